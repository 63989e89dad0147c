use std::io::Read;
use std::time::Instant;
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let t = Instant::now();
    let mut s = String::new();
    liblzma::read::XzDecoder::new(std::fs::File::open(p).unwrap()).read_to_string(&mut s).unwrap();
    eprintln!("xz: {:?} {} bytes", t.elapsed(), s.len());
    let t = Instant::now();
    let ps = vmimage_apt::parse_paragraphs(&s).unwrap();
    eprintln!("paragraphs: {:?} {}", t.elapsed(), ps.len());
    let t = Instant::now();
    let pk = vmimage_apt::parse_packages(&s, "amd64", "x", "y").unwrap();
    eprintln!("packages (incl paragraphs): {:?} {}", t.elapsed(), pk.len());
    let t = Instant::now();
    let u = vmimage_apt::Universe::from_packages(pk);
    eprintln!("universe: {:?} {}", t.elapsed(), u.len());
}
