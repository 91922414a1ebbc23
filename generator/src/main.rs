fn main() {
    eprintln!("ostree-system-generator: not built yet");
    std::process::exit(1);
}
