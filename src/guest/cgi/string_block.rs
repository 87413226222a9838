//! NUL-terminated strings laid out as `args_get` and `environ_get` copy them into a guest:
//! the arguments of a module and the environment of one request are each built once, in
//! this form, so that a guest's `*_get` call is a single copy.

/// `STRING\0` for each string, in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringBlock {
    text: String,
}

impl StringBlock {
    /// An empty block with room for `bytes` without reallocating.
    pub(crate) fn with_capacity(bytes: usize) -> StringBlock {
        StringBlock {
            text: String::with_capacity(bytes),
        }
    }

    /// `ARG\0` for each argument.
    pub(crate) fn args<'a>(args: impl IntoIterator<Item = &'a str>) -> StringBlock {
        let mut block = StringBlock::default();
        for arg in args {
            block.push_with(|text| text.push_str(arg));
        }
        block
    }

    /// Appends one string, written by `write` (which must not write a NUL).
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut String)) {
        write(&mut self.text);
        self.text.push('\0');
    }

    /// The strings, without their NULs.
    pub(crate) fn strings(&self) -> impl Iterator<Item = &str> {
        self.text.split_terminator('\0')
    }

    /// How many strings: one NUL ends each.
    pub(crate) fn len(&self) -> usize {
        self.text.bytes().filter(|&b| b == 0).count()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The block as the guest receives it, every string with its NUL.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
}
