fn main() {
    std::process::exit(codestep::cli::main());
}
