// ThreadSanitizer suppressions built into the batching tests (only under -fsanitize=thread).
//
// Abseil's per-thread semaphore (synchronization_internal::Waiter, inside the ThreadIdentity that
// abseil allocates with LowLevelAlloc and recycles between threads) is reported as racing with the
// identity's allocation: a known false positive of abseil's own synchronization under TSan
// (google/sanitizers#953, abseil-cpp#217). Only frames inside that abseil-internal class match, so
// races on the library's or the tests' own data are still reported.

#if defined(__SANITIZE_THREAD__)
#define IIS_BATCHING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IIS_BATCHING_TSAN 1
#endif
#endif

#if defined(IIS_BATCHING_TSAN)
extern "C" const char* __tsan_default_suppressions() {
  return "race:synchronization_internal::Waiter::Post\n"
         "race:synchronization_internal::Waiter::Wait\n";
}
#endif
