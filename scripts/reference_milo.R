#!/usr/bin/env Rscript
# Reference values for src/milo (tests/milo.rs): Milo's neighbourhoods, counts, edgeR QL test
# and spatial FDR, computed the way miloR runs them.
#
# miloR is not packaged for Debian, so this script reproduces miloR's steps (github.com/
# MarioniLab/miloR, commit bdecaebeb5595545f9b9c8f2defb321519d98a70) with the packages it calls:
# - R/makeNhoods.R, .refined_sampling: for each randomly drawn vertex, the median position of its
#   k nearest neighbours (itself excluded, BiocNeighbors::findKNN), then the nearest cell to that
#   median; unique(); a neighbourhood = neighborhood(graph, order = 1, nodes = v) in the
#   undirected kNN graph (R/buildGraph.R: .neighborsToKNNGraph(directed = FALSE)).
#   Here the kNN search is brute force (exact, as findKNN's default KmknnParam).
# - R/countCells.R: t(nhoods) %*% sample dummies.
# - R/testNhoods.R (non-GLMM branch): DGEList(counts, lib.size = colSums(counts)),
#   calcNormFactors(method = "TMM"), estimateDisp(dge, design), glmQLFit(dge, design,
#   robust = TRUE, legacy = TRUE), glmQLFTest(coef = ncol(design)). edgeR 3.40.2 predates the
#   `legacy` argument: its glmQLFit is the legacy method.
# - R/graphSpatialFDR.R, weighting "k-distance": w = 1 / distance to the k-th nearest neighbour
#   of the index cell; the weighted BH lines below are copied from that file.
#
# Run from the repository root: Rscript scripts/reference_milo.R
# (Debian's r-bioc-edger 3.40.2, r-bioc-limma 3.54.1, r-cran-igraph; writes fixtures/milo/).
suppressPackageStartupMessages({ library(edgeR); library(igraph) })
out <- "fixtures/milo"
dir.create(out, showWarnings = FALSE, recursive = TRUE)
set.seed(20221)

# Cells: a Gaussian mixture in 8 dimensions, 6 samples (3 per condition), cluster 4 enriched
# in condition 1 and cluster 5 depleted, so that some neighbourhoods differ.
n <- 2000; d <- 8; n.clusters <- 6
centres <- matrix(rnorm(n.clusters * d, sd = 4), n.clusters, d)
sample.of.cell <- sample(0:5, n, replace = TRUE)
condition.of.sample <- c(0, 0, 0, 1, 1, 1)
batch.of.sample <- c(0, 1, 0, 1, 0, 1)
# Replicate variation: each sample's cluster proportions carry log-normal noise (sd 0.3).
base <- rbind(c(2, 2, 2, 2, 1, 2), c(2, 2, 2, 2, 4, 0.5))
p.sample <- t(vapply(0:5, function(s) base[condition.of.sample[s + 1] + 1, ] * exp(rnorm(6, sd = 0.3)), numeric(6)))
cluster <- vapply(sample.of.cell, function(s) sample(0:5, 1, prob = p.sample[s + 1, ]), 0)
emb <- centres[cluster + 1, ] + matrix(rnorm(n * d), n, d)
emb <- signif(emb, 6)
write.table(emb, file.path(out, "embedding.csv"), sep = ",", row.names = FALSE, col.names = FALSE)
write.table(data.frame(sample = sample.of.cell, cluster = cluster), file.path(out, "cells.csv"),
            sep = ",", row.names = FALSE, quote = FALSE)

# Exact kNN: 14 other cells per cell (our table of 15 includes the cell itself).
k <- 14
dm <- as.matrix(dist(emb))
knn <- t(apply(dm, 1, function(r) order(r)[2:(k + 1)]))
write.table(knn - 1, file.path(out, "knn.csv"), sep = ",", row.names = FALSE, col.names = FALSE)

# makeNhoods(prop = 0.1, k = 14, refined = TRUE, refinement_scheme = "reduced_dim").
random.vertices <- sample(seq_len(n), size = floor(0.1 * n))
med <- t(vapply(random.vertices, function(v) apply(emb[knn[v, ], , drop = FALSE], 2, median), numeric(d)))
refined <- vapply(seq_len(nrow(med)), function(i) {
  which.min(colSums((t(emb) - med[i, ])^2))
}, 0L)
index.cells <- unique(refined)
g <- simplify(graph_from_edgelist(cbind(rep(seq_len(n), each = k), as.vector(t(knn))), directed = FALSE))
nh <- lapply(index.cells, function(v) as.integer(neighborhood(g, order = 1, nodes = v)[[1]]))
write.table(data.frame(random = random.vertices - 1, refined = refined - 1),
            file.path(out, "sampling.csv"), sep = ",", row.names = FALSE, quote = FALSE)

# countCells.
counts <- t(vapply(nh, function(m) tabulate(sample.of.cell[m] + 1, nbins = 6), numeric(6)))
colnames(counts) <- paste0("s", 0:5)
write.table(data.frame(index_cell = index.cells - 1, size = lengths(nh), counts),
            file.path(out, "counts.csv"), sep = ",", row.names = FALSE, quote = FALSE)

# testNhoods: two designs, ~ condition and ~ batch + condition.
designs <- list(
  condition = model.matrix(~ factor(condition.of.sample)),
  batch = model.matrix(~ factor(batch.of.sample) + factor(condition.of.sample))
)
kdist <- apply(dm[index.cells, , drop = FALSE], 1, function(r) sort(r)[k + 1])
for (nm in names(designs)) {
  x.model <- designs[[nm]]
  dge <- DGEList(counts = counts, lib.size = colSums(counts))
  dge <- calcNormFactors(dge, method = "TMM")
  dge <- estimateDisp(dge, x.model)
  fit <- glmQLFit(dge, x.model, robust = TRUE)
  res <- as.data.frame(topTags(glmQLFTest(fit, coef = ncol(x.model)), sort.by = "none", n = Inf))
  fit.nr <- glmQLFit(dge, x.model, robust = FALSE)
  res.nr <- as.data.frame(topTags(glmQLFTest(fit.nr, coef = ncol(x.model)), sort.by = "none", n = Inf))
  # graphSpatialFDR, weighting "k-distance" (miloR R/graphSpatialFDR.R).
  pvalues <- res$PValue
  w <- 1 / kdist
  w[is.infinite(w)] <- 1
  o <- order(pvalues)
  pvalues <- pvalues[o]
  w <- w[o]
  adjp <- numeric(length(o))
  adjp[o] <- rev(cummin(rev(sum(w) * pvalues / cumsum(w))))
  adjp <- pmin(adjp, 1)
  write.table(data.frame(logFC = res$logFC, PValue = res$PValue, F = res$F,
                         PValue_nonrobust = res.nr$PValue, F_nonrobust = res.nr$F,
                         logCPM = res$logCPM, trended = dge$trended.dispersion,
                         kdist = kdist, SpatialFDR = adjp),
              file.path(out, paste0("results_", nm, ".csv")), sep = ",", row.names = FALSE, quote = FALSE)
  write.table(data.frame(norm_factors = dge$samples$norm.factors, design = x.model),
              file.path(out, paste0("design_", nm, ".csv")), sep = ",", row.names = FALSE, quote = FALSE)
  cat(nm, ": common dispersion", dge$common.dispersion, "df.prior (non-robust)", fit.nr$df.prior[1],
      "significant at spatial FDR 0.1:", sum(adjp < 0.1), "of", length(adjp), "\n")
}
