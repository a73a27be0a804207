#!/usr/bin/env python3
"""Builds the bundled human Gene Ontology biological-process gene-set library.

Source (installable here without the internet, from Debian's package archive):
  apt-get download r-bioc-org.hs.eg.db r-bioc-go.db      # Bioconductor 3.16.0 (Debian 12)
  for f in *.deb; do dpkg-deb -x "$f" x; done
  python3 scripts/build_go_genesets.py x/usr/lib/R/site-library

org.Hs.eg.db's table `go_bp_all` holds gene -> GO BP annotations already propagated to all
ancestor terms (is_a / part_of); GO.db's `go_term` gives the term names. Annotations with
evidence code ND (no biological data) are dropped. Terms with 10 to 500 distinct gene symbols
are kept, plus the required programs listed below whatever their size. Output: assets/genesets/go_bp_human.gmt.gz (GMT: id, name, symbols...), sorted by
GO id, symbols sorted, written with a fixed gzip mtime so the file is reproducible.
"""
import gzip
import os
import sqlite3
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "x/usr/lib/R/site-library"
out = os.path.join(os.path.dirname(__file__), "..", "assets", "genesets", "go_bp_human.gmt.gz")

org = sqlite3.connect(os.path.join(root, "org.Hs.eg.db", "extdata", "org.Hs.eg.sqlite"))
go = sqlite3.connect(os.path.join(root, "GO.db", "extdata", "GO.sqlite"))
meta = dict(org.execute("select name, value from metadata"))
names = dict(go.execute("select go_id, term from go_term where ontology = 'BP'"))

sets = {}
q = """select g.go_id, i.symbol from go_bp_all g join gene_info i on g._id = i._id
       where g.evidence != 'ND'"""
for go_id, symbol in org.execute(q):
    sets.setdefault(go_id, set()).add(symbol)

# Programs of the condition comparison (cell-cell interaction, humoral signaling, ...) are
# always kept, even where propagation makes them larger than 500 genes (cell-cell adhesion
# and cell-cell signaling are).
required = ["GO:0098609", "GO:0007267", "GO:0006959", "GO:0019221", "GO:0070098",
            "GO:0060337", "GO:0097193"]
kept = {k: v for k, v in sets.items()
        if k in names and (10 <= len(v) <= 500 or k in required)}
missing = [r for r in required if r not in kept]
if missing:
    sys.exit(f"required terms missing after filtering: {missing}")

with open(out, "wb") as raw:
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
        for go_id in sorted(kept):
            name = names[go_id].replace("\t", " ")
            f.write(("\t".join([go_id, name] + sorted(kept[go_id])) + "\n").encode())

print(f"{len(kept)} terms written to {out}; GO source date {meta.get('GOSOURCEDATE')}, "
      f"Entrez Gene {meta.get('GOEGSOURCEDATE')}")
