@echo off
rem Entry a person double-clicks on Windows. On a stick it runs the bundled
rem executable; in a development checkout it runs the sources under the
rem project's pinned Node 24 (npm dependencies installed first if missing).
setlocal
set "HERE=%~dp0"
if exist "%HERE%.pocketvm\bin\win-x64\launcher.exe" (
  "%HERE%.pocketvm\bin\win-x64\launcher.exe" %*
  exit /b %ERRORLEVEL%
)
if exist "%HERE%build.js" (
  if not exist "%HERE%node_modules\node\bin\node.exe" (
    node "%HERE%build.js" deps || exit /b %ERRORLEVEL%
  )
  "%HERE%node_modules\node\bin\node.exe" "%HERE%src\cli\main.ts" %*
  exit /b %ERRORLEVEL%
)
echo pocketvm: error: no launcher executable in %HERE%.pocketvm\bin\win-x64\ 1>&2
exit /b 9
