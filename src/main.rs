fn main() {
    eprintln!("ringsfu: not built yet");
    std::process::exit(2);
}
