fn main() {
    eprintln!("ringsfu-bench: not built yet");
    std::process::exit(2);
}
