//! The main job. For now: reads the bundled dataset (or `--input PATH`) and reports its size.
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [] => "fixtures/celltypist_sample/filtered_feature_bc_matrix".to_string(),
        [flag, p] if flag == "--input" => p.clone(),
        _ => {
            eprintln!("usage: pipeline [--input PATH]");
            return ExitCode::from(1);
        }
    };
    match scrna::read_10x(&path) {
        Ok(d) => {
            println!(
                "{path}: {} cells x {} genes, {} non-zeros, {} counts",
                d.n_cells(),
                d.n_genes(),
                d.counts.nnz(),
                d.counts.total()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
