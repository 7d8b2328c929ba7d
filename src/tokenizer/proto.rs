//! Reader for the few fields of SentencePiece's `ModelProto` that encoding
//! needs. The format is protobuf (proto2); a hand-written reader keeps the
//! engine free of a code generator and a runtime for a 40-line job.
//!
//! Field numbers follow `sentencepiece_model.proto`.

/// Why a buffer is not a valid `ModelProto`.
pub type ProtoError = String;

/// `ModelProto.SentencePiece.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    fn from_proto(value: u64) -> Result<Self, ProtoError> {
        Ok(match value {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            other => return Err(format!("unknown piece type {other}")),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// `TrainerSpec` fields that change how text is encoded.
#[derive(Clone, Debug)]
pub struct TrainerSpec {
    /// 1 = unigram (the only type T5 uses), 2 = BPE, 3 = word, 4 = char.
    pub model_type: u64,
    pub byte_fallback: bool,
    pub treat_whitespace_as_suffix: bool,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        Self {
            model_type: 1,
            byte_fallback: false,
            treat_whitespace_as_suffix: false,
        }
    }
}

/// `NormalizerSpec`, with the proto2 defaults.
#[derive(Clone, Debug)]
pub struct NormalizerSpec {
    pub name: String,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ModelProto {
    pub pieces: Vec<Piece>,
    pub trainer: TrainerSpec,
    pub normalizer: NormalizerSpec,
}

/// One field as it sits on the wire.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| "truncated varint".to_string())?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| format!("field of {len} bytes runs past the end of the data"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next `(field number, value)`, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, ProtoError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| "length does not fit in memory".to_string())?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            wire => return Err(format!("unsupported wire type {wire} in field {number}")),
        };
        Ok(Some((number, value)))
    }
}

fn expect_bytes<'a>(value: Value<'a>, what: &str) -> Result<&'a [u8], ProtoError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(format!("{what} has the wrong wire type")),
    }
}

fn expect_varint(value: Value<'_>, what: &str) -> Result<u64, ProtoError> {
    match value {
        Value::Varint(v) => Ok(v),
        _ => Err(format!("{what} has the wrong wire type")),
    }
}

fn expect_string(value: Value<'_>, what: &str) -> Result<String, ProtoError> {
    let bytes = expect_bytes(value, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn parse_piece(buf: &[u8]) -> Result<Piece, ProtoError> {
    let mut piece = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.field()? {
        match number {
            1 => piece.piece = expect_string(value, "piece")?,
            2 => match value {
                Value::Fixed32(bits) => piece.score = f32::from_bits(bits),
                _ => return Err("piece score has the wrong wire type".into()),
            },
            3 => piece.kind = PieceType::from_proto(expect_varint(value, "piece type")?)?,
            _ => {}
        }
    }
    Ok(piece)
}

fn parse_trainer(buf: &[u8]) -> Result<TrainerSpec, ProtoError> {
    let mut spec = TrainerSpec::default();
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.field()? {
        match number {
            3 => spec.model_type = expect_varint(value, "model_type")?,
            24 => spec.treat_whitespace_as_suffix = expect_varint(value, "treat_ws")? != 0,
            35 => spec.byte_fallback = expect_varint(value, "byte_fallback")? != 0,
            _ => {}
        }
    }
    Ok(spec)
}

fn parse_normalizer(buf: &[u8]) -> Result<NormalizerSpec, ProtoError> {
    let mut spec = NormalizerSpec::default();
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.field()? {
        match number {
            1 => spec.name = expect_string(value, "normalizer name")?,
            2 => spec.precompiled_charsmap = expect_bytes(value, "charsmap")?.to_vec(),
            3 => spec.add_dummy_prefix = expect_varint(value, "add_dummy_prefix")? != 0,
            4 => spec.remove_extra_whitespaces = expect_varint(value, "remove_ws")? != 0,
            5 => spec.escape_whitespaces = expect_varint(value, "escape_ws")? != 0,
            _ => {}
        }
    }
    Ok(spec)
}

/// Parses a serialised `ModelProto`.
pub fn parse_model(buf: &[u8]) -> Result<ModelProto, ProtoError> {
    let mut model = ModelProto::default();
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.field()? {
        match number {
            1 => model
                .pieces
                .push(parse_piece(expect_bytes(value, "piece")?)?),
            2 => model.trainer = parse_trainer(expect_bytes(value, "trainer_spec")?)?,
            3 => model.normalizer = parse_normalizer(expect_bytes(value, "normalizer_spec")?)?,
            _ => {}
        }
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_garbage_buffers_are_errors() {
        // A length-delimited field 1 claiming 100 bytes with only 2 present.
        assert!(parse_model(&[0x0a, 100, 1, 2]).is_err());
        // Wire type 3 (start group) is not used by this schema.
        assert!(parse_model(&[0x0b]).is_err());
        // An unterminated varint.
        assert!(parse_model(&[0x08, 0xff]).is_err());
    }

    #[test]
    fn defaults_follow_proto2() {
        let model = parse_model(&[]).unwrap();
        assert!(model.normalizer.add_dummy_prefix);
        assert!(model.normalizer.remove_extra_whitespaces);
        assert!(model.normalizer.escape_whitespaces);
        assert!(!model.trainer.byte_fallback);
        assert_eq!(model.trainer.model_type, 1);
    }
}
