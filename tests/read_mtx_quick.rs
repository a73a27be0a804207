use scrna::io::{mtx::read_10x_mtx, ReadOptions};

#[test]
fn reads_celltypist_and_cr2() {
    let d = read_10x_mtx(
        "fixtures/celltypist_sample/filtered_feature_bc_matrix",
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!((d.n_cells(), d.n_genes()), (559, 32786));
    let d = read_10x_mtx(
        "fixtures/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21",
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!((d.n_cells(), d.n_genes()), (12, 343));
}
