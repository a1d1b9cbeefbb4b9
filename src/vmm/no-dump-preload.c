// Makes the process it is loaded into not dumpable: prctl(PR_SET_DUMPABLE, 0)
// from an ELF constructor, before QEMU's main() runs. QEMU holds the disk key
// and the guest's memory; a process that is not dumpable writes no core dump,
// and its /proc/<pid>/mem, environ, maps and fds are closed to other processes
// of the same user (they become owned by root). The launcher cannot do this for
// QEMU: execve resets the flag, so it must be set inside QEMU itself, which is
// what a library loaded by the dynamic loader (ld.so --preload, or LD_PRELOAD)
// does.
//
// No libc: the raw system call keeps this object loadable into any dynamic
// executable whatever its C library (the bundled glibc, a host's glibc or musl),
// and it needs nothing but the kernel. Built by build/stick/no-dump-preload.ts
// with `-nostdlib -shared -fPIC`; the loader runs .init_array all the same.
#define PR_SET_DUMPABLE 4

#if defined(__x86_64__)
#define SYS_prctl 157
static long raw_prctl(long option, long arg2) {
  long ret;
  register long r10 __asm__("r10") = 0;
  register long r8 __asm__("r8") = 0;
  __asm__ volatile("syscall" : "=a"(ret) : "0"(SYS_prctl), "D"(option), "S"(arg2), "d"(0L), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
#define SYS_prctl 167
static long raw_prctl(long option, long arg2) {
  register long x8 __asm__("x8") = SYS_prctl;
  register long x0 __asm__("x0") = option;
  register long x1 __asm__("x1") = arg2;
  register long x2 __asm__("x2") = 0;
  register long x3 __asm__("x3") = 0;
  register long x4 __asm__("x4") = 0;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
}
#else
#error "no-dump-preload: no system call stub for this architecture"
#endif

__attribute__((constructor)) static void pocketvm_not_dumpable(void) {
  // Nothing to report to: if it fails the process runs on dumpable, as before
  // (RLIMIT_CORE 0 and dump-guest-core=off still hold).
  (void)raw_prctl(PR_SET_DUMPABLE, 0);
}
