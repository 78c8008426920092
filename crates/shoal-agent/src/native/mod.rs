//! The native runtime.
pub mod shim {
    pub fn main(_args: &[std::ffi::OsString]) -> i32 { 2 }
}
