fn main() {
    eprintln!("genfx: not built yet");
    std::process::exit(2);
}
