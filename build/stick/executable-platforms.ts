// The platforms a stick carries launchers for; executables.ts builds them and
// addons.ts says which native addons each needs (both import this, not each other).
export const EXECUTABLE_PLATFORMS = ['linux-x64', 'win-x64', 'darwin-x64'] as const;
export type ExecutablePlatform = (typeof EXECUTABLE_PLATFORMS)[number];
