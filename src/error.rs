//! The crate's error type.
//!
//! Every error that user data can cause names where it happened: the file, and inside it the
//! line, the HDF5 object or the index. Library code never panics on bad input.

use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `scrna`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an operation on a file or folder (missing, unreadable, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A text file (Matrix Market, TSV, CSV, GMT, ...) has bad content at a given line.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },

    /// A binary container (HDF5, `.h5ad`) lacks an expected object or holds a bad one.
    #[error("{}: {object}: {message}", path.display())]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// The group, dataset or attribute, e.g. `/matrix/indptr`.
        object: String,
        /// What is wrong.
        message: String,
    },

    /// A path whose format could not be recognised.
    #[error("{}: {message}", path.display())]
    UnknownFormat {
        /// The path.
        path: PathBuf,
        /// What was looked for.
        message: String,
    },

    /// An option value that cannot be used.
    #[error("invalid option `{within}{}{name}`: {message}", if within.is_empty() { "" } else { "." })]
    InvalidOption {
        /// The options the field belongs to, as a path from the run's options (for example
        /// `umap` for `umap.min_dist`); empty when the field is of the called function's own
        /// options.
        within: String,
        /// Option (field) name.
        name: &'static str,
        /// Why it is invalid.
        message: String,
    },

    /// Data that is inconsistent in memory (shapes that disagree, an index out of range,
    /// an empty matrix, too few cells for a step, ...).
    #[error("{context}: {message}")]
    InvalidData {
        /// Where: the step or the object, e.g. `pca` or `sample "resistant_1"`.
        context: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// An [`Error::Parse`] at `line` (1-based) of `path`.
    pub fn parse(path: impl AsRef<Path>, line: u64, message: impl Into<String>) -> Self {
        Error::Parse {
            path: path.as_ref().to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// An [`Error::Hdf5`] about `object` in `path`.
    pub fn hdf5(path: impl AsRef<Path>, object: impl Into<String>, message: impl ToString) -> Self {
        Error::Hdf5 {
            path: path.as_ref().to_path_buf(),
            object: object.into(),
            message: message.to_string(),
        }
    }

    /// An [`Error::InvalidOption`].
    pub fn option(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidOption {
            within: String::new(),
            name,
            message: message.into(),
        }
    }

    /// This error with an [`Error::InvalidOption`]'s field placed within `options` (for example
    /// `umap`, so that the message names `umap.min_dist`); other errors are returned unchanged.
    pub fn within(self, options: &str) -> Self {
        match self {
            Error::InvalidOption {
                name,
                message,
                within,
            } => Error::InvalidOption {
                within: if within.is_empty() {
                    options.to_string()
                } else {
                    format!("{options}.{within}")
                },
                name,
                message,
            },
            e => e,
        }
    }

    /// An [`Error::InvalidData`].
    pub fn data(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidData {
            context: context.into(),
            message: message.into(),
        }
    }
}
