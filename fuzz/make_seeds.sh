#!/usr/bin/env bash
# Builds the seed corpora under fuzz/corpus/<target>/ from the fixtures (not committed).
# Usage: fuzz/make_seeds.sh   (from anywhere)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fx="$here/../fixtures"
c="$here/corpus"
mkdir -p "$c"/{mtx,tsv,tenx_h5,h5ad,gmt,sample_sheet}

# Matrix Market: plain and gzip fixtures, plus two tiny hand-written files.
cp "$fx/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21/matrix.mtx" "$c/mtx/cr120.mtx"
cp "$fx/scanpy_cr300/filtered_feature_bc_matrix/matrix.mtx.gz" "$c/mtx/cr300.mtx.gz"
printf '%%%%MatrixMarket matrix coordinate integer general\n%%metadata_json: {}\n3 2 4\n1 1 5\n3 1 1\n2 2 7\n2 2 1\n' > "$c/mtx/tiny_int.mtx"
printf '%%%%MatrixMarket matrix coordinate real general\n2 3 3\n1 3 0.5\r\n2\t1\t2.5e1\n1 2 3\n' > "$c/mtx/tiny_real.mtx"
printf '%%%%MatrixMarket matrix coordinate integer general\n2 2 3\n1 2 4\n1 1 1\n2 1 3\n' | gzip -c > "$c/mtx/tiny_unsorted.mtx.gz"

# features / genes / barcodes.
cp "$fx/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21/genes.tsv" "$c/tsv/genes.tsv"
cp "$fx/scanpy_cr120_hg19_chr21/filtered_gene_bc_matrices/hg19_chr21/barcodes.tsv" "$c/tsv/barcodes.tsv"
cp "$fx/scanpy_cr300/filtered_feature_bc_matrix/features.tsv.gz" "$c/tsv/features.tsv.gz"
printf 'ENSG1\tA\tGene Expression\nENSG2\tA\tAntibody Capture\r\n\nENSG3\tB\n' > "$c/tsv/tiny_features.tsv"

# 10x HDF5: the fixtures and a small file written by the library.
cp "$fx/scanpy_cr120_h5/filtered_gene_bc_matrices_h5.h5" "$c/tenx_h5/cr120.h5"
cp "$fx/scanpy_cr120_h5/multiple_genomes.h5" "$c/tenx_h5/multiple_genomes.h5"
cp "$fx/scanpy_cr300/filtered_feature_bc_matrix.h5" "$c/tenx_h5/cr300.h5"

# .h5ad: the anndata-written fixture and small files written by the library.
cp "$fx/reference/h5/anndata_small.h5ad" "$c/h5ad/anndata_small.h5ad"
tmp="$(mktemp -d)"
cargo run --quiet --manifest-path "$here/Cargo.toml" --example write_seeds -- "$tmp"
cp "$tmp"/*.h5ad "$c/h5ad/"
cp "$tmp"/small_v3.h5 "$c/tenx_h5/"
rm -rf "$tmp"

# GMT (first lines of the bundled library) and a gene-set table.
gzip -dc "$here/../assets/genesets/go_bp_human.gmt.gz" | head -n 20 > "$c/gmt/go_head.gmt" || true
printf 'SET_A\tna\tCD3E\tCD3D\t\tCD3E\nSET_B\tB cells\tMS4A1\r\n# comment\n' > "$c/gmt/tiny.gmt"
printf 'set,gene\nT,CD3E\nT,CD3D\nB,MS4A1\n' > "$c/gmt/table.csv"

# Sample sheets (and the ligand-receptor table, read by the same target).
printf 'sample,condition,path\nctrl_1,control,a/b\n"res,1",resistant,"/abs/""q"""\n# c\n' > "$c/sample_sheet/sheet.csv"
printf 'path,extra,Condition,SAMPLE\nx,1,c,s\n' > "$c/sample_sheet/reordered.csv"
cp "$fx/lr_pairs_small.csv" "$c/sample_sheet/lr_pairs.csv"
echo "seeds written to $c"
