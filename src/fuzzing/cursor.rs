//! The byte reader both fuzz scripts ([`super::script`], [`super::server_script`]) decode their
//! steps with: any bytes read as a script, the end of the input ending it.

pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    /// A length-prefixed byte string (u16 length; the end of the input cuts it short).
    pub(crate) fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = usize::from(self.u16()?);
        let end = self.data.len().min(self.pos + len);
        let out = self.data.get(self.pos..end)?.to_vec();
        self.pos = end;
        Some(out)
    }
}
