/* LD_PRELOAD probe: names each thread that opens an OpenMP parallel region (libgomp's
   GOMP_parallel, which torch's CPU kernels use), once per thread, on stderr as
   "[omp-teams] <python thread name>". Used by tests/integration/test_thread_teams.py. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

typedef void (*parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
static __thread int reported = 0;

void GOMP_parallel(void (*fn)(void *), void *data, unsigned threads, unsigned flags) {
  static parallel_fn real = 0;
  if (!real) real = (parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
  if (!real) {
    void *lib = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (lib) real = (parallel_fn)dlsym(lib, "GOMP_parallel");
  }
  if (!reported) {
    reported = 1;
    int (*ensure)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
    void (*release)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "PyGILState_Release");
    int (*run)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
    if (ensure && release && run) {
      int state = ensure();
      run("import sys, threading\n"
          "sys.stderr.write('[omp-teams] %s\\n' % threading.current_thread().name)\n"
          "sys.stderr.flush()\n");
      release(state);
    } else {
      fprintf(stderr, "[omp-teams] <no python>\n");
    }
  }
  real(fn, data, threads, flags);
}
