#!/usr/bin/env python3
"""Builds assets/interactions/cellphonedb_v5.csv.gz, the bundled ligand-receptor resource.

Source: CellPhoneDB v5.0.0's database release `cellphonedb.zip` (repository
ventolab/cellphonedb-data, commit aaf01d6aa3254519556f80e830208f645b19684b, 2023-09-11), the
file CellPhoneDB's `statistical_analysis` reads. Only the columns scrna uses are kept, one row
per interaction (duplicates of the same partner pair dropped, first kept, as CellPhoneDB does):

    id_cp_interaction, partner_a, partner_b, genes_a, genes_b,
    classification, directionality, secreted, integrin

A partner is a gene (partner = its symbol, genes = the symbol) or a complex (partner = the
complex name, genes = its subunits' symbols joined by '+'). `secreted` / `integrin`: either
partner is flagged so in CellPhoneDB's multidata table (its own rule for the `secreted` column).

Usage (the repository's .venv or any Python 3 with pandas):
    git -C <cellphonedb-data checkout> show aaf01d6:cellphonedb.zip > cellphonedb.zip
    python scripts/make_lr_resource.py cellphonedb.zip assets/interactions/cellphonedb_v5.csv.gz
"""
import gzip
import io
import sys
import zipfile

import pandas as pd


def main(zip_path, out_path):
    z = zipfile.ZipFile(zip_path)
    read = lambda name: pd.read_csv(io.BytesIO(z.read(name)))
    multidata = read("multidata_table.csv").set_index("id_multidata")
    genes = read("gene_table.csv")
    composition = read("complex_composition_table.csv")
    interactions = read("interaction_table.csv")

    # Protein multidata id -> gene symbol (one symbol per protein in v5; checked).
    per_protein = genes.groupby("protein_id")["gene_name"].unique()
    assert (per_protein.apply(len) == 1).all(), "a protein with several gene names"
    protein_gene = per_protein.apply(lambda g: g[0]).to_dict()
    protein_table = read("protein_table.csv").set_index("id_protein")
    # gene_table.protein_id refers to protein_table.id_protein; map to multidata ids.
    multidata_gene = {
        int(protein_table.loc[pid, "protein_multidata_id"]): g for pid, g in protein_gene.items()
    }
    subunits = (
        composition.sort_values(["complex_multidata_id", "id_complex_composition"])
        .groupby("complex_multidata_id")["protein_multidata_id"]
        .apply(list)
        .to_dict()
    )

    def partner(mid):
        row = multidata.loc[mid]
        if bool(row["is_complex"]):
            gs = [multidata_gene[p] for p in subunits[mid]]
            return row["name"], "+".join(gs)
        g = multidata_gene[mid]
        return g, g

    interactions = interactions.drop_duplicates(["multidata_1_id", "multidata_2_id"])
    rows = []
    for _, r in interactions.iterrows():
        a, b = int(r["multidata_1_id"]), int(r["multidata_2_id"])
        pa, ga = partner(a)
        pb, gb = partner(b)
        flag = lambda col: bool(multidata.loc[a, col]) or bool(multidata.loc[b, col])
        rows.append(
            dict(
                id_cp_interaction=r["id_cp_interaction"],
                partner_a=pa,
                partner_b=pb,
                genes_a=ga,
                genes_b=gb,
                classification="" if pd.isna(r["classification"]) else r["classification"],
                directionality="" if pd.isna(r["directionality"]) else r["directionality"],
                secreted=str(flag("secreted")).lower(),
                integrin=str(flag("integrin")).lower(),
            )
        )
    out = pd.DataFrame(rows)
    text = out.to_csv(index=False, lineterminator="\n")
    with gzip.GzipFile(out_path, "wb", compresslevel=9, mtime=0) as f:
        f.write(text.encode())
    print(f"{len(out)} interactions, {sum('+' in g for g in out.genes_a.tolist() + out.genes_b.tolist())} complex partners -> {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
