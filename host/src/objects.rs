//! The host-side objects a plugin holds handles to: effects (descriptors and
//! instances), clips, parameters, images, and the records tests read back.

use crate::abi::{OfxName, *};
use crate::image::Buffer;
use crate::props::{PropertySet, Value};
use crate::registry::Registry;
use crate::source::FrameSource;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// A message the plugin posted through the message suite.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// `kOfxMessageError` etc., as given.
    pub kind: String,
    pub id: String,
    pub text: String,
    /// Set with `setPersistentMessage`.
    pub persistent: bool,
}

/// One progress-suite call, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    Start { label: String },
    Update(f64),
    End,
}

/// Ways the host breaks its promises on purpose, for hostile tests.
#[derive(Clone, Debug, Default)]
pub struct Misbehave {
    /// Properties removed from every action's `inArgs` before the call.
    pub drop_in_args: Vec<String>,
    /// Pass null `inArgs`/`outArgs` to every action.
    pub null_args: bool,
    /// `clipGetImage` on input clips fails with no image.
    pub no_source_images: bool,
    /// Input images are delivered in this depth, whatever the clip says.
    pub source_depth: Option<crate::image::Depth>,
    /// Images are laid out top-down with negative row bytes.
    pub negative_row_bytes: bool,
    /// `abort()` answers true from this call on (counted per instance).
    pub abort_after_polls: Option<usize>,
}

/// State shared by every object of one loaded bundle.
pub struct HostShared {
    /// True when acting as DaVinci Resolve (null V2 message pointers).
    pub resolve: bool,
}

/// Messages posted with a null or unknown handle.
pub static ORPHAN_MESSAGES: Mutex<Vec<Message>> = Mutex::new(Vec::new());

/// An image effect: a descriptor (Describe/DescribeInContext) or an instance.
pub struct Effect {
    pub props: Arc<PropertySet>,
    pub params: Arc<ParamSet>,
    pub clips: Mutex<Vec<Arc<Clip>>>,
    pub shared: Arc<HostShared>,
    pub is_instance: bool,
    /// Hostile settings for this instance (tests).
    pub misbehave: Mutex<Misbehave>,
    pub abort: AtomicBool,
    pub abort_polls: AtomicUsize,
    pub messages: Mutex<Vec<Message>>,
    pub persistent: Mutex<Option<Message>>,
    pub progress: Mutex<Vec<Progress>>,
}

pub static EFFECTS: Registry<Effect> = Registry::new();

impl Effect {
    pub fn new(props: Arc<PropertySet>, shared: Arc<HostShared>, is_instance: bool) -> Arc<Self> {
        let effect = Arc::new(Self {
            props,
            params: ParamSet::new(),
            clips: Mutex::new(Vec::new()),
            shared,
            is_instance,
            misbehave: Mutex::new(Misbehave::default()),
            abort: AtomicBool::new(false),
            abort_polls: AtomicUsize::new(0),
            messages: Mutex::new(Vec::new()),
            persistent: Mutex::new(None),
            progress: Mutex::new(Vec::new()),
        });
        EFFECTS.add(&effect);
        effect
    }

    pub fn handle(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    pub fn clip(&self, name: &str) -> Option<Arc<Clip>> {
        self.clips.lock().iter().find(|c| c.name == name).cloned()
    }

    /// What `abort()` answers now.
    pub fn aborted(&self) -> bool {
        let polls = self.abort_polls.fetch_add(1, Ordering::SeqCst);
        if let Some(limit) = self.misbehave.lock().abort_after_polls {
            if polls >= limit {
                return true;
            }
        }
        self.abort.load(Ordering::SeqCst)
    }
}

/// A clip of an effect, described or instantiated.
pub struct Clip {
    pub name: String,
    pub props: Arc<PropertySet>,
    pub effect: Weak<Effect>,
    /// Frames for an input clip; none for the output or an unconnected input.
    pub source: Mutex<Option<Arc<dyn FrameSource>>>,
    /// Output buffers of renders in flight, by time.
    pub outputs: Mutex<BTreeMap<u64, Arc<Buffer>>>,
}

pub static CLIPS: Registry<Clip> = Registry::new();

impl Clip {
    pub fn new(name: &str, props: Arc<PropertySet>, effect: &Arc<Effect>) -> Arc<Self> {
        let clip = Arc::new(Self {
            name: name.to_string(),
            props,
            effect: Arc::downgrade(effect),
            source: Mutex::new(None),
            outputs: Mutex::new(BTreeMap::new()),
        });
        CLIPS.add(&clip);
        clip
    }

    pub fn handle(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    pub fn is_output(&self) -> bool {
        self.name == kOfxImageEffectOutputClipName.name()
    }
}

/// An image handed to the plugin; its handle is its property set.
pub struct Image {
    pub props: Arc<PropertySet>,
    pub buffer: Arc<Buffer>,
}

/// Images the plugin holds (until `clipReleaseImage`), by handle.
pub static HELD_IMAGES: Mutex<BTreeMap<usize, Arc<Image>>> = Mutex::new(BTreeMap::new());

/// The value kinds of parameters, by how the C varargs carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Int,
    Double,
    Text,
}

/// A parameter's type, from `kOfxParamType*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Integer(usize),
    Double(usize),
    Boolean,
    Choice,
    StrChoice,
    String,
    Custom,
    /// Group, Page, PushButton, Bytes, Parametric: no value through paramGetValue.
    NoValue,
}

impl ParamKind {
    pub fn from_type(name: &str) -> Option<Self> {
        let is = |c: &std::ffi::CStr| name == c.name();
        Some(if is(kOfxParamTypeInteger) {
            ParamKind::Integer(1)
        } else if is(kOfxParamTypeInteger2D) {
            ParamKind::Integer(2)
        } else if is(kOfxParamTypeInteger3D) {
            ParamKind::Integer(3)
        } else if is(kOfxParamTypeDouble) {
            ParamKind::Double(1)
        } else if is(kOfxParamTypeDouble2D) {
            ParamKind::Double(2)
        } else if is(kOfxParamTypeDouble3D) || is(kOfxParamTypeRGB) {
            ParamKind::Double(3)
        } else if is(kOfxParamTypeRGBA) {
            ParamKind::Double(4)
        } else if is(kOfxParamTypeBoolean) {
            ParamKind::Boolean
        } else if is(kOfxParamTypeChoice) {
            ParamKind::Choice
        } else if is(kOfxParamTypeStrChoice) {
            ParamKind::StrChoice
        } else if is(kOfxParamTypeString) {
            ParamKind::String
        } else if is(kOfxParamTypeCustom) {
            ParamKind::Custom
        } else if is(kOfxParamTypeGroup)
            || is(kOfxParamTypePage)
            || is(kOfxParamTypePushButton)
            || is(kOfxParamTypeBytes)
            || is(kOfxParamTypeParametric)
        {
            ParamKind::NoValue
        } else {
            return None;
        })
    }

    /// How the value travels through varargs, and how many values.
    pub fn shape(self) -> Option<(ValueKind, usize)> {
        match self {
            ParamKind::Integer(n) => Some((ValueKind::Int, n)),
            ParamKind::Double(n) => Some((ValueKind::Double, n)),
            ParamKind::Boolean | ParamKind::Choice => Some((ValueKind::Int, 1)),
            ParamKind::StrChoice | ParamKind::String | ParamKind::Custom => {
                Some((ValueKind::Text, 1))
            }
            ParamKind::NoValue => None,
        }
    }
}

/// A parameter's current value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Ints(Vec<i32>),
    Doubles(Vec<f64>),
    Text(CString),
    None,
}

pub struct Param {
    pub name: String,
    pub type_name: String,
    pub kind: ParamKind,
    pub props: Arc<PropertySet>,
    pub value: Mutex<ParamValue>,
    /// Set for a parameter the host animates itself, as a transition's
    /// `Transition`: 0 at the first time, 1 at the last, linear between.
    pub driven: Mutex<Option<(f64, f64)>>,
    /// Values the plugin set on a parameter that evaluates on change: each
    /// asks the host to render the effect again (tests count them).
    pub evaluations: AtomicUsize,
}

pub static PARAMS: Registry<Param> = Registry::new();

impl Param {
    pub fn new(name: &str, type_name: &str, kind: ParamKind, props: Arc<PropertySet>) -> Arc<Self> {
        let param = Arc::new(Self {
            name: name.to_string(),
            type_name: type_name.to_string(),
            kind,
            props,
            value: Mutex::new(ParamValue::None),
            driven: Mutex::new(None),
            evaluations: AtomicUsize::new(0),
        });
        PARAMS.add(&param);
        param
    }

    pub fn handle(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// The value of a host-driven parameter at `time` (`None` for others).
    pub fn driven_at(&self, time: f64) -> Option<f64> {
        let (first, last) = (*self.driven.lock())?;
        let span = (last - first).max(f64::EPSILON);
        Some(((time - first) / span).clamp(0.0, 1.0))
    }

    /// The default as the plugin described it, as a value.
    pub fn default_value(&self) -> ParamValue {
        let default = self.props.get(kOfxParamPropDefault.name());
        match (self.kind.shape(), default) {
            (Some((ValueKind::Int, n)), Some(Value::Int(v))) => {
                ParamValue::Ints((0..n).map(|i| v.get(i).copied().unwrap_or(0)).collect())
            }
            (Some((ValueKind::Double, n)), Some(Value::Double(v))) => {
                ParamValue::Doubles((0..n).map(|i| v.get(i).copied().unwrap_or(0.0)).collect())
            }
            (Some((ValueKind::Text, _)), Some(Value::Str(v))) => {
                ParamValue::Text(v.first().cloned().unwrap_or_default())
            }
            (Some((ValueKind::Int, n)), _) => ParamValue::Ints(vec![0; n]),
            (Some((ValueKind::Double, n)), _) => ParamValue::Doubles(vec![0.0; n]),
            (Some((ValueKind::Text, _)), _) => ParamValue::Text(CString::default()),
            (None, _) => ParamValue::None,
        }
    }
}

pub struct ParamSet {
    pub props: Arc<PropertySet>,
    pub params: Mutex<Vec<Arc<Param>>>,
}

pub static PARAM_SETS: Registry<ParamSet> = Registry::new();

impl ParamSet {
    pub fn new() -> Arc<Self> {
        let set = Arc::new(Self {
            props: PropertySet::new("parameter set"),
            params: Mutex::new(Vec::new()),
        });
        PARAM_SETS.add(&set);
        set
    }

    pub fn handle(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    pub fn get(&self, name: &str) -> Option<Arc<Param>> {
        self.params.lock().iter().find(|p| p.name == name).cloned()
    }
}
