#!/usr/bin/env Rscript
# Reference values for src/limma.rs and src/propeller.rs (tests/limma.rs, tests/propeller.rs).
#
# Versions: R 4.2 with Debian's r-bioc-limma 3.54.1 (statmod 1.5.0 for the robust fit).
# speckle is not packaged for Debian: its propeller functions are reproduced below line for line
# from github.com/phipsonlab/speckle at commit 3fe9cf41f9c713ad1770510df6db0e1625c3fa09
# (R/getTransformedProps.R, R/propeller.R, R/propeller.ttest.R, R/propeller.anova.R), with the
# cell-level `table(sample, clusters)` replaced by the samples x clusters count table itself.
#
# Run from the repository root: Rscript scripts/reference_limma.R -> fixtures/limma/*.csv
suppressMessages(library(limma))
stopifnot(packageVersion("limma") == "3.54.1")

out <- file.path("fixtures", "limma")
dir.create(out, showWarnings = FALSE, recursive = TRUE)

# Inputs are written with 17 significant digits (exact doubles), results with 12 (the tests
# compare to 1e-6 relative at most).
fmt <- function(x, digits) ifelse(is.na(x), "NA", sprintf(paste0("%.", digits, "g"), x))
write_num <- function(df, name, digits = 12) {
  cols <- lapply(df, function(v) if (is.numeric(v)) fmt(v, digits) else as.character(v))
  lines <- c(paste(names(df), collapse = ","), do.call(paste, c(cols, sep = ",")))
  path <- file.path(out, name)
  con <- if (grepl("[.]gz$", name)) gzfile(path, "w") else file(path, "w")
  writeLines(lines, con)
  close(con)
}
write_matrix <- function(m, name) {
  df <- as.data.frame(m)
  colnames(df) <- paste0("c", seq_len(ncol(m)))
  write_num(df, name, digits = 17)
}

# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
# (a) The Haber et al. 2017 small-intestine composition table: 10 mice x 8 cell types.
counts <- as.matrix(read.csv(file.path(out, "haber_counts.csv"), row.names = 1))
condition <- sub("_[0-9]+$", "", rownames(counts))
group <- factor(condition)            # levels: Control, H.poly.Day10, H.poly.Day3, Salm
write_num(data.frame(sample = rownames(counts), group = as.integer(group) - 1L),
          "haber_groups.csv")

# (b) A seeded random matrix: 500 features x 6 samples (3 + 3), log-normal-ish variances with a
# trend on the mean, 12 outlier variances and 5 constant features (zero residual variance).
set.seed(20240611)
ng <- 500
mu <- runif(ng, 2, 12)
s2 <- 0.05 * exp(1.5 - 0.15 * mu) * 4 / rchisq(ng, df = 4)
s2[1:12] <- s2[1:12] * 30
y <- matrix(rnorm(ng * 6, mean = mu, sd = sqrt(s2)), ng, 6)
y[20:60, 4:6] <- y[20:60, 4:6] + 1.5
y[491:495, ] <- mu[491:495]
write_matrix(y, "random_y.csv.gz")
rgroup <- factor(rep(c("A", "B"), each = 3))

# ---------------------------------------------------------------------------------------------
# limma: lmFit -> (contrasts.fit) -> eBayes
# ---------------------------------------------------------------------------------------------
dump_fit <- function(fit, name) {
  q <- ncol(fit$coefficients)
  df <- data.frame(feature = seq_len(nrow(fit$coefficients)) - 1L)
  for (j in seq_len(q)) df[[paste0("coef_", j)]] <- fit$coefficients[, j]
  for (j in seq_len(q)) df[[paste0("stdev_", j)]] <- fit$stdev.unscaled[, j]
  for (j in seq_len(q)) df[[paste0("t_", j)]] <- fit$t[, j]
  for (j in seq_len(q)) df[[paste0("p_", j)]] <- fit$p.value[, j]
  df$sigma <- fit$sigma
  df$s2_post <- fit$s2.post
  df$df_prior <- rep_len(fit$df.prior, nrow(df))
  df$s2_prior <- rep_len(fit$s2.prior, nrow(df))
  df$df_total <- fit$df.total
  df$F <- fit$F
  df$F_p <- fit$F.p.value
  write_num(df, name)
}

# Transformed proportions exactly as speckle's getTransformedProps (below).
props <- counts / rowSums(counts)
logit_y <- t(log(((counts + 0.5) / rowSums(counts + 0.5)) / (1 - (counts + 0.5) / rowSums(counts + 0.5))))
asin_y <- t(asin(sqrt(props)))
write_matrix(logit_y, "haber_logit_y.csv")

design_h <- model.matrix(~ 0 + group)
cont_h <- makeContrasts(groupH.poly.Day10 - groupControl, groupH.poly.Day3 - groupControl,
                        groupSalm - groupControl, levels = design_h)
write_matrix(unclass(design_h)[, , drop = FALSE], "haber_design.csv")
write_matrix(unclass(cont_h), "haber_contrasts.csv")

design_r <- model.matrix(~ rgroup)  # intercept + B
design_r0 <- model.matrix(~ 0 + rgroup)
write_matrix(unclass(design_r)[, , drop = FALSE], "random_design.csv")
write_matrix(unclass(design_r0)[, , drop = FALSE], "random_design0.csv")

for (robust in c(FALSE, TRUE)) for (trend in c(FALSE, TRUE)) {
  tag <- paste0(if (robust) "robust" else "plain", "_", if (trend) "trend" else "notrend")
  fit <- lmFit(logit_y, design_h)
  fit <- contrasts.fit(fit, cont_h)
  fit <- eBayes(fit, robust = robust, trend = trend)
  dump_fit(fit, paste0("limma_haber_", tag, ".csv"))

  fit <- eBayes(lmFit(y, design_r), robust = robust, trend = trend)
  dump_fit(fit, paste0("limma_random_", tag, ".csv.gz"))

  fit <- contrasts.fit(lmFit(y, design_r0), c(-1, 1))
  fit <- eBayes(fit, robust = robust, trend = trend)
  dump_fit(fit, paste0("limma_random_contrast_", tag, ".csv.gz"))
}

# squeezeVar on its own (the haber residual variances with df 6), and the special functions.
fit <- lmFit(logit_y, design_h)
sv <- squeezeVar(fit$sigma^2, fit$df.residual)
write_num(data.frame(var = fit$sigma^2, df = fit$df.residual, var_post = sv$var.post,
                     var_prior = sv$var.prior, df_prior = sv$df.prior), "squeeze_var.csv")
xs <- c(0.01, 0.1, 0.5, 1, 1.5, 2.5, 3, 5.5, 7, 10, 20, 55.5, 100, 1e3, 1e5)
write_num(data.frame(x = xs, digamma = digamma(xs), trigamma = trigamma(xs),
                     tetragamma = psigamma(xs, 2)), "special.csv")
ys <- c(1e-7, 1e-4, 0.01, 0.1, 0.5, 1, 2, 10, 100, 1e4, 1e6, 5e6)
write_num(data.frame(y = ys, trigamma_inverse = limma::trigammaInverse(ys)),
          "trigamma_inverse.csv")

# ---------------------------------------------------------------------------------------------
# speckle's propeller (github.com/phipsonlab/speckle, commit 3fe9cf4)
# ---------------------------------------------------------------------------------------------
getTransformedProps_tab <- function(tab, transform = NULL) {
  if (is.null(transform)) transform <- "logit"
  props <- tab / rowSums(tab)
  if (transform == "asin") {
    prop.trans <- asin(sqrt(props))
  } else if (transform == "logit") {
    props.pseudo <- (tab + 0.5) / rowSums(tab + 0.5)
    prop.trans <- log(props.pseudo / (1 - props.pseudo))
  }
  list(Counts = t(tab), TransformedProps = t(prop.trans), Proportions = t(props))
}

propeller.ttest <- function(prop.list, design, contrasts, robust, trend, sort) {
  prop.trans <- prop.list$TransformedProps
  prop <- prop.list$Proportions
  if (nrow(prop.trans) <= 2) robust <- FALSE
  fit <- lmFit(prop.trans, design)
  fit.cont <- contrasts.fit(fit, contrasts = contrasts)
  fit.cont <- eBayes(fit.cont, robust = robust, trend = trend)
  if (length(contrasts) == 2) {
    fit.prop <- lmFit(prop, design)
    z <- apply(fit.prop$coefficients, 1, function(x) x^contrasts)
    RR <- apply(z, 2, prod)
  } else {
    new.des <- design[, contrasts != 0]
    fit.prop <- lmFit(prop, new.des)
    new.cont <- contrasts[contrasts != 0]
    z <- apply(fit.prop$coefficients, 1, function(x) x^new.cont)
    RR <- apply(z, 2, prod)
  }
  fdr <- p.adjust(fit.cont$p.value[, 1], method = "BH")
  out <- data.frame(PropMean = fit.prop$coefficients, PropRatio = RR,
                    Tstatistic = fit.cont$t[, 1], P.Value = fit.cont$p.value[, 1], FDR = fdr)
  if (sort) out[order(out$P.Value), ] else out
}

propeller.anova <- function(prop.list, design, coef, robust, trend, sort) {
  prop.trans <- prop.list$TransformedProps
  prop <- prop.list$Proportions
  if (nrow(prop.trans) <= 2) robust <- FALSE
  fit.prop <- lmFit(prop, design[, coef])
  design[, 1] <- 1
  colnames(design)[1] <- "Int"
  fit <- lmFit(prop.trans, design)
  fit <- eBayes(fit[, coef[-1]], robust = robust, trend = trend)
  p.value <- fit$F.p.value
  fdr <- p.adjust(fit$F.p.value, method = "BH")
  out <- data.frame(PropMean = fit.prop$coefficients, Fstatistic = fit$F,
                    P.Value = p.value, FDR = fdr)
  if (sort) out[order(out$P.Value), ] else out
}

# propeller() with the count table in place of the cell-level vectors; rows in cluster order.
propeller_tab <- function(tab, group, trend = FALSE, robust = TRUE, transform = "logit") {
  prop.list <- getTransformedProps_tab(tab, transform)
  baseline.props <- colSums(tab) / sum(tab)
  group.coll <- table(rownames(tab), group)
  group.coll <- group.coll[rownames(tab), , drop = FALSE]
  design <- matrix(as.integer(group.coll != 0), ncol = ncol(group.coll))
  colnames(design) <- colnames(group.coll)
  if (ncol(design) == 2) {
    out <- propeller.ttest(prop.list, design, contrasts = c(1, -1), robust = robust,
                           trend = trend, sort = FALSE)
    stat <- out$Tstatistic
    ratio <- out$PropRatio
  } else {
    out <- propeller.anova(prop.list, design, coef = seq_len(ncol(design)), robust = robust,
                           trend = trend, sort = FALSE)
    stat <- out$Fstatistic
    ratio <- rep(NA_real_, nrow(out))
  }
  means <- as.matrix(out[, grep("^PropMean", names(out)), drop = FALSE])
  df <- data.frame(cluster = seq_len(ncol(tab)) - 1L, baseline = as.vector(baseline.props))
  for (j in seq_len(ncol(means))) df[[paste0("mean_", j)]] <- means[, j]
  df$ratio <- ratio
  df$stat <- stat
  df$p <- out$P.Value
  df$fdr <- out$FDR
  df
}

subsets <- list(
  all = rep(TRUE, nrow(counts)),
  control_salm = condition %in% c("Control", "Salm"),
  day3_day10 = condition %in% c("H.poly.Day3", "H.poly.Day10")
)
for (s in names(subsets)) {
  keep <- subsets[[s]]
  tab <- counts[keep, , drop = FALSE]
  g <- factor(condition[keep])
  for (transform in c("logit", "asin")) for (robust in c(TRUE, FALSE)) for (trend in c(FALSE, TRUE)) {
    res <- propeller_tab(tab, g, trend = trend, robust = robust, transform = transform)
    tag <- paste0(s, "_", transform, "_", if (robust) "robust" else "plain", "_",
                  if (trend) "trend" else "notrend")
    write_num(res, paste0("propeller_", tag, ".csv"))
  }
}
cat("wrote", length(list.files(out)), "files to", out, "\n")
