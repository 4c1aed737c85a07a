fn main() {
    // A worker process of `codestep run` or `serve` runs the worker and exits here.
    codestep::engine::run_if_worker();
    std::process::exit(codestep::cli::main());
}
