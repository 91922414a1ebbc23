//! composefs images: the tree they are written from, the EROFS writer and reader, and
//! the composefs-dump(5) text format.

#[cfg(feature = "writer")]
pub mod dump;
pub mod format;
#[cfg(feature = "writer")]
pub mod fromdir;
pub mod reader;
pub mod tree;
#[cfg(feature = "writer")]
pub mod writer;
