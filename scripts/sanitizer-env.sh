# Sourced by the sanitizer and fuzz scripts: what the sanitizers do on a
# finding (stop, with a stack) and the third-party reports they ignore.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$root/tests/sanitizers/ubsan.supp"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
