fn main() -> std::process::ExitCode {
    ostree_composefs::main()
}
