fn main() {
    eprintln!("ostree-prepare-root: not built yet");
    std::process::exit(1);
}
