//! Writes the seed corpus, `corpus/<target>/<name>`, from `src/seeds.rs`, and checks that every
//! seed passes its target's harness. Run from `fuzz/`: `cargo run --example gen_corpus`.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, seeds) in dkraid_fuzz::seeds::all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (name, bytes) in seeds {
            dkraid_fuzz::seeds::run(target, &bytes);
            std::fs::write(dir.join(name), &bytes).expect("write a seed");
            println!("{target}/{name}: {} bytes", bytes.len());
        }
    }
}
