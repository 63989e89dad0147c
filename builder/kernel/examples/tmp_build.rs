//! Temporary driver (deleted after use): runs build_kernel like the CLI does.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let recipe = vmimage_kernel::KernelRecipe::load(args[1].as_ref()).unwrap();
    let opts = vmimage_kernel::BuildOptions {
        out: args[2].clone().into(),
        jobs: None,
        rebuild: false,
        cache: vmimage_kernel::default_cache_dir(),
    };
    let t = std::time::Instant::now();
    let r = vmimage_kernel::build_kernel(&recipe, &opts, &mut |s| eprintln!("[{:.0}s] {s}", t.elapsed().as_secs_f64()));
    match r {
        Ok(o) => println!("{}", serde_json::to_string_pretty(&o).unwrap()),
        Err(e) => { eprintln!("error: {e}"); std::process::exit(1) }
    }
}
