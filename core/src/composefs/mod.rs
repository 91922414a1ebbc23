//! composefs images: the tree they are written from, the EROFS writer and reader, and
//! the composefs-dump(5) text format.

pub mod dump;
pub mod format;
pub mod fromdir;
pub mod reader;
pub mod tree;
pub mod writer;
