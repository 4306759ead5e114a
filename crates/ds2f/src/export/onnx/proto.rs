//! The ONNX messages ds2f writes (`onnx.proto`, IR version 8), encoded in protobuf's wire
//! format by hand.
//!
//! Why no protobuf crate: ds2f only *writes* ONNX, and only a dozen fields of seven messages
//! (model, graph, node, attribute, tensor, value info and its type/shape). Encoding them is a
//! varint, a tag and a length prefix per field (about eighty lines here), whereas `prost` needs
//! its derive macro and either `protoc` at build time or the ONNX schema hand-declared as
//! annotated structs anyway — more code to compile for nothing ds2f reads back. The field
//! numbers are those of onnx/onnx.proto (cited at each message); readers accept fields in any
//! order and repeated scalars packed or not.

/// Wire types of the protobuf encoding.
const VARINT: u8 = 0;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A message being encoded.
#[derive(Default)]
struct Buf(Vec<u8>);

impl Buf {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    fn int(&mut self, field: u32, v: i64) {
        self.tag(field, VARINT);
        // Negative int64 values are ten-byte two's-complement varints.
        self.varint(v as u64);
    }

    fn float(&mut self, field: u32, v: f32) {
        self.tag(field, FIXED32);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, field: u32, v: &[u8]) {
        self.tag(field, LEN);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
    }

    fn str(&mut self, field: u32, v: &str) {
        self.bytes(field, v.as_bytes());
    }

    fn message(&mut self, field: u32, m: Buf) {
        self.bytes(field, &m.0);
    }
}

/// `TensorProto.DataType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// FLOAT = 1.
    Float = 1,
    /// INT64 = 7.
    Int64 = 7,
}

/// A constant tensor (`TensorProto`: dims = 1, data_type = 2, name = 8, raw_data = 9).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorProto {
    /// Name the graph refers to it by.
    pub name: String,
    /// Element type.
    pub data_type: DataType,
    /// Shape.
    pub dims: Vec<i64>,
    /// Little-endian data.
    pub raw_data: Vec<u8>,
}

impl TensorProto {
    /// A float32 tensor.
    pub fn f32(name: &str, dims: &[usize], values: &[f32]) -> Self {
        Self {
            name: name.into(),
            data_type: DataType::Float,
            dims: dims.iter().map(|&d| d as i64).collect(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// A one-dimensional int64 tensor.
    pub fn i64(name: &str, values: &[i64]) -> Self {
        Self {
            name: name.into(),
            data_type: DataType::Int64,
            dims: vec![values.len() as i64],
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    fn encode(&self) -> Buf {
        let mut b = Buf::default();
        for &d in &self.dims {
            b.int(1, d);
        }
        b.int(2, self.data_type as i64);
        b.str(8, &self.name);
        b.bytes(9, &self.raw_data);
        b
    }
}

/// A node attribute (`AttributeProto`: name = 1, f = 2, i = 3, s = 4, ints = 8, type = 20).
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute {
    /// FLOAT = 1.
    Float(&'static str, f32),
    /// INT = 2.
    Int(&'static str, i64),
    /// STRING = 3.
    Str(&'static str, String),
    /// INTS = 7.
    Ints(&'static str, Vec<i64>),
}

impl Attribute {
    fn encode(&self) -> Buf {
        let mut b = Buf::default();
        match self {
            Attribute::Float(name, v) => {
                b.str(1, name);
                b.float(2, *v);
                b.int(20, 1);
            }
            Attribute::Int(name, v) => {
                b.str(1, name);
                b.int(3, *v);
                b.int(20, 2);
            }
            Attribute::Str(name, v) => {
                b.str(1, name);
                b.str(4, v);
                b.int(20, 3);
            }
            Attribute::Ints(name, v) => {
                b.str(1, name);
                for &x in v {
                    b.int(8, x);
                }
                b.int(20, 7);
            }
        }
        b
    }
}

/// An operator (`NodeProto`: input = 1, output = 2, name = 3, op_type = 4, attribute = 5).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeProto {
    /// Input value names (`""` for an omitted optional input).
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Node name.
    pub name: String,
    /// Operator (`Conv`, `Resize`, ...), default domain.
    pub op_type: &'static str,
    /// Attributes.
    pub attributes: Vec<Attribute>,
}

impl NodeProto {
    fn encode(&self) -> Buf {
        let mut b = Buf::default();
        for i in &self.inputs {
            b.str(1, i);
        }
        for o in &self.outputs {
            b.str(2, o);
        }
        b.str(3, &self.name);
        b.str(4, self.op_type);
        for a in &self.attributes {
            b.message(5, a.encode());
        }
        b
    }
}

/// One dimension of a graph input or output: fixed, or named and dynamic.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    /// `dim_value` (field 1).
    Value(usize),
    /// `dim_param` (field 2).
    Param(&'static str),
}

/// A graph input or output (`ValueInfoProto`: name = 1, type = 2; `TypeProto.tensor_type` = 1;
/// `TypeProto.Tensor`: elem_type = 1, shape = 2; `TensorShapeProto.dim` = 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    /// Value name.
    pub name: String,
    /// Element type.
    pub elem_type: DataType,
    /// Shape.
    pub dims: Vec<Dim>,
}

impl ValueInfo {
    fn encode(&self) -> Buf {
        let mut shape = Buf::default();
        for d in &self.dims {
            let mut dim = Buf::default();
            match d {
                Dim::Value(v) => dim.int(1, *v as i64),
                Dim::Param(p) => dim.str(2, p),
            }
            shape.message(1, dim);
        }
        let mut tensor = Buf::default();
        tensor.int(1, self.elem_type as i64);
        tensor.message(2, shape);
        let mut ty = Buf::default();
        ty.message(1, tensor);
        let mut b = Buf::default();
        b.str(1, &self.name);
        b.message(2, ty);
        b
    }
}

/// The graph (`GraphProto`: node = 1, name = 2, initializer = 5, input = 11, output = 12).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphProto {
    /// Name.
    pub name: String,
    /// Nodes in topological order.
    pub nodes: Vec<NodeProto>,
    /// Constant tensors (weights, shape constants).
    pub initializers: Vec<TensorProto>,
    /// Inputs.
    pub inputs: Vec<ValueInfo>,
    /// Outputs.
    pub outputs: Vec<ValueInfo>,
}

impl GraphProto {
    fn encode(&self) -> Buf {
        let mut b = Buf::default();
        for n in &self.nodes {
            b.message(1, n.encode());
        }
        b.str(2, &self.name);
        for t in &self.initializers {
            b.message(5, t.encode());
        }
        for v in &self.inputs {
            b.message(11, v.encode());
        }
        for v in &self.outputs {
            b.message(12, v.encode());
        }
        b
    }
}

/// The file (`ModelProto`: ir_version = 1, producer_name = 2, producer_version = 3,
/// doc_string = 6, graph = 7, opset_import = 8 (`OperatorSetIdProto.version` = 2),
/// metadata_props = 14 (`StringStringEntryProto`: key = 1, value = 2)).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProto {
    /// IR version (8 goes with opset 17).
    pub ir_version: i64,
    /// Opset of the default domain.
    pub opset: i64,
    /// `ds2f`.
    pub producer_name: String,
    /// ds2f's version.
    pub producer_version: String,
    /// Free text.
    pub doc_string: String,
    /// The graph.
    pub graph: GraphProto,
    /// Key/value metadata.
    pub metadata: Vec<(String, String)>,
}

impl ModelProto {
    /// The serialised file.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Buf::default();
        b.int(1, self.ir_version);
        b.str(2, &self.producer_name);
        b.str(3, &self.producer_version);
        b.str(6, &self.doc_string);
        b.message(7, self.graph.encode());
        let mut opset = Buf::default();
        opset.int(2, self.opset);
        b.message(8, opset);
        for (k, v) in &self.metadata {
            let mut entry = Buf::default();
            entry.str(1, k);
            entry.str(2, v);
            b.message(14, entry);
        }
        b.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_tags_follow_the_protobuf_encoding() {
        // protobuf's own examples: 150 → 96 01; field 1 varint 150 → 08 96 01.
        let mut b = Buf::default();
        b.int(1, 150);
        assert_eq!(b.0, [0x08, 0x96, 0x01]);
        // -1 as int64: ten bytes.
        let mut b = Buf::default();
        b.int(3, -1);
        assert_eq!(b.0.len(), 11);
        assert_eq!(b.0[10], 0x01);
        // field 2 "testing" → 12 07 74 65 73 74 69 6e 67.
        let mut b = Buf::default();
        b.str(2, "testing");
        assert_eq!(b.0, [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']);
        let mut b = Buf::default();
        b.float(2, 1.0);
        assert_eq!(b.0, [0x15, 0x00, 0x00, 0x80, 0x3f]);
    }
}
