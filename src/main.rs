/// mimalloc, not glibc malloc: a request allocates and frees many small blocks on the
/// thread that serves it, which mimalloc's per-thread free lists serve without the
/// arena locking and `malloc_consolidate` passes glibc showed under load (load/README,
/// "Lessons").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    bulkhead::cli::main()
}
