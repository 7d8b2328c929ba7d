//! Loading a plugin binary and describing its effects.

use crate::abi::{status_name, OfxName, *};
use crate::defaults::{self, HostKind};
use crate::objects::{Effect, HostShared, Misbehave, ORPHAN_MESSAGES};
use crate::props::{PropertySet, Value};
use crate::suites;
use crate::HostError;
use parking_lot::Mutex;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bundles loaded in this process, by canonical binary path.
static OPEN_BUNDLES: Mutex<Vec<(PathBuf, std::sync::Weak<Bundle>)>> = Mutex::new(Vec::new());

type GetNumber = unsafe extern "C" fn() -> c_int;
type GetPlugin = unsafe extern "C" fn(c_int) -> *mut OfxPlugin;
type SetHost = unsafe extern "C" fn(*const OfxHost) -> OfxStatus;

/// The host structure handed to the plugin; boxed so its address is stable.
struct HostStruct(Box<OfxHost>);
// SAFETY: the struct only holds the host property set's address (shared
// through a thread-safe registry) and a function pointer; it is never mutated
// after creation.
unsafe impl Send for HostStruct {}
// SAFETY: as for Send.
unsafe impl Sync for HostStruct {}

/// One plugin of the binary, as `OfxGetPlugin` described it.
pub struct PluginInfo {
    pub id: String,
    pub api: String,
    pub api_version: i32,
    pub version: (u32, u32),
    entry: OfxPluginEntryPoint,
    loaded: Mutex<bool>,
}

/// A loaded binary and the host it was given. Shared by every descriptor and
/// instance made from it; the library stays loaded while any of them lives.
pub struct Bundle {
    pub path: PathBuf,
    pub kind: HostKind,
    pub shared: Arc<HostShared>,
    pub host_props: Arc<PropertySet>,
    pub plugins: Vec<PluginInfo>,
    host: HostStruct,
    /// Never closed: like Natron and Resolve, the host keeps a plugin binary
    /// mapped for the life of the process. A plugin (Rust or C++) registers
    /// thread-local destructors that run at thread exit, which would jump into
    /// unmapped code after an unload. Reopening the bundle reuses the mapping.
    library: std::mem::ManuallyDrop<libloading::Library>,
}

/// The folder under `Contents/` that holds this platform's binary.
pub fn arch_dir() -> &'static str {
    if cfg!(target_os = "windows") {
        "Win64"
    } else if cfg!(target_os = "macos") {
        "MacOS"
    } else if cfg!(all(target_os = "linux", target_arch = "aarch64")) {
        "Linux-arm64"
    } else {
        "Linux-x86-64"
    }
}

/// The binary inside a bundle folder, or the path itself when it is a file.
pub fn binary_path(path: &Path) -> Result<PathBuf, HostError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".bundle"))
        .ok_or_else(|| {
            HostError::Bundle(format!(
                "{} is neither a plugin file nor a *.ofx.bundle folder",
                path.display()
            ))
        })?;
    let binary = path.join("Contents").join(arch_dir()).join(name);
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(HostError::Bundle(format!(
            "bundle {} has no {}",
            path.display(),
            binary.display()
        )))
    }
}

impl Bundle {
    /// Loads the binary and asks for its plugins (no action is run yet).
    ///
    /// A binary is loaded once per process (the dynamic loader shares it
    /// anyway, and a plugin keeps one host pointer), so opening it again
    /// while it is open gives the same bundle; as another host kind, an error.
    pub fn open(path: &Path, kind: HostKind) -> Result<Arc<Self>, HostError> {
        let binary = binary_path(path)?;
        let key = binary.canonicalize().unwrap_or_else(|_| binary.clone());
        let mut open = OPEN_BUNDLES.lock();
        open.retain(|(_, b)| b.strong_count() > 0);
        if let Some(existing) = open
            .iter()
            .find(|(p, _)| *p == key)
            .and_then(|(_, b)| b.upgrade())
        {
            if existing.kind != kind {
                return Err(HostError::Bundle(format!(
                    "{} is already loaded in this process as {:?}; one process hosts a binary as one host",
                    binary.display(),
                    existing.kind
                )));
            }
            return Ok(existing);
        }
        let bundle = Self::load_binary(binary, kind)?;
        open.push((key, Arc::downgrade(&bundle)));
        Ok(bundle)
    }

    fn load_binary(binary: PathBuf, kind: HostKind) -> Result<Arc<Self>, HostError> {
        // SAFETY: loading a plugin runs its initialisers; that is what a host
        // does, and OpenFX plugins are built to be loaded this way.
        let library = unsafe { libloading::Library::new(&binary) }
            .map_err(|e| HostError::Bundle(format!("cannot load {}: {e}", binary.display())))?;
        let host_props = defaults::host_props(kind);
        let shared = Arc::new(HostShared {
            resolve: kind == HostKind::Resolve,
        });
        suites::HOSTS.add_at(host_props.handle(), &shared);
        let host = HostStruct(Box::new(OfxHost {
            host: host_props.handle() as OfxPropertySetHandle,
            fetchSuite: Some(suites::fetch_suite),
        }));

        // SAFETY: the symbol, when present, has the OfxSetHost signature the
        // OpenFX 1.5 spec gives it.
        let set_host = unsafe { library.get::<SetHost>(b"OfxSetHost\0") }.ok();
        if let Some(set_host) = set_host {
            // SAFETY: the host struct outlives the library (field order).
            let status = unsafe { set_host(&*host.0) };
            if status != stat::OK && status != stat::REPLY_DEFAULT {
                return Err(HostError::Bundle(format!(
                    "OfxSetHost failed: {} ({status})",
                    status_name(status)
                )));
            }
        }
        // SAFETY: both symbols are required exports of every OpenFX binary,
        // with these signatures.
        let (count, get) = unsafe {
            let count = library
                .get::<GetNumber>(b"OfxGetNumberOfPlugins\0")
                .map_err(|e| HostError::Bundle(format!("{}: {e}", binary.display())))?;
            let get = library
                .get::<GetPlugin>(b"OfxGetPlugin\0")
                .map_err(|e| HostError::Bundle(format!("{}: {e}", binary.display())))?;
            (count(), *get)
        };
        let mut plugins = Vec::new();
        for index in 0..count.max(0) {
            // SAFETY: index is in range as the binary itself reported.
            let raw = unsafe { get(index) };
            if raw.is_null() {
                return Err(HostError::Bundle(format!("OfxGetPlugin({index}) is null")));
            }
            // SAFETY: a non-null plugin struct stays valid while the library
            // is loaded; its strings are C strings.
            let plugin = unsafe { &*raw };
            let text = |p: *const c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    // SAFETY: plugin strings are NUL-terminated.
                    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                }
            };
            if let Some(set_host) = plugin.setHost {
                // SAFETY: the host struct outlives the library (field order);
                // setHost takes a mutable pointer for historical reasons only.
                unsafe { set_host(&*host.0 as *const OfxHost as *mut OfxHost) };
            }
            plugins.push(PluginInfo {
                id: text(plugin.pluginIdentifier),
                api: text(plugin.pluginApi),
                api_version: plugin.apiVersion,
                version: (plugin.pluginVersionMajor, plugin.pluginVersionMinor),
                entry: plugin.mainEntry,
                loaded: Mutex::new(false),
            });
        }
        Ok(Arc::new(Self {
            path: binary,
            kind,
            shared,
            host_props,
            plugins,
            host,
            library: std::mem::ManuallyDrop::new(library),
        }))
    }

    /// Acts as a background renderer (the default: a render farm, as
    /// `genfx render` is) or as an interactive application
    /// (`kOfxImageEffectHostPropIsBackground` = 0, viewer renders marked
    /// interactive).
    pub fn set_background(&self, background: bool) {
        self.host_props.put(
            kOfxImageEffectHostPropIsBackground.name(),
            Value::Int(vec![background as i32]),
        );
    }

    pub fn is_background(&self) -> bool {
        self.host_props
            .int(kOfxImageEffectHostPropIsBackground.name(), 0)
            != Some(0)
    }

    pub fn plugin_index(&self, id: &str) -> Result<usize, HostError> {
        self.plugins.iter().position(|p| p.id == id).ok_or_else(|| {
            let known: Vec<&str> = self.plugins.iter().map(|p| p.id.as_str()).collect();
            HostError::Bundle(format!(
                "no plugin '{id}' in {}; it has: {}",
                self.path.display(),
                known.join(", ")
            ))
        })
    }

    /// Calls a plugin's main entry. Hostile settings may drop or null the
    /// arguments on the way.
    pub fn call(
        &self,
        plugin: usize,
        action: &CStr,
        handle: usize,
        in_args: Option<&PropertySet>,
        out_args: Option<&PropertySet>,
        misbehave: &Misbehave,
    ) -> OfxStatus {
        let Some(entry) = self.plugins.get(plugin).and_then(|p| p.entry) else {
            return stat::ERR_MISSING_HOST_FEATURE;
        };
        if let Some(args) = in_args {
            for name in &misbehave.drop_in_args {
                args.remove(name);
            }
        }
        let (in_ptr, out_ptr) = if misbehave.null_args {
            (std::ptr::null_mut(), std::ptr::null_mut())
        } else {
            let ptr = |p: Option<&PropertySet>| {
                p.map_or(std::ptr::null_mut(), |p| {
                    p as *const PropertySet as OfxPropertySetHandle
                })
            };
            (ptr(in_args), ptr(out_args))
        };
        log::debug!("{} -> {}", self.plugins[plugin].id, action.name());
        // SAFETY: calling the plugin's entry point with a C-string action, a
        // registered handle (or null) and live property sets (or null), as
        // the OpenFX API defines.
        unsafe { entry(action.as_ptr(), handle as *const _, in_ptr, out_ptr) }
    }

    /// Runs the Load action once per plugin.
    pub fn load(&self, plugin: usize) -> Result<(), HostError> {
        let info = &self.plugins[plugin];
        let mut loaded = info.loaded.lock();
        if *loaded {
            return Ok(());
        }
        let status = self.call(plugin, kOfxActionLoad, 0, None, None, &Misbehave::default());
        if status != stat::OK && status != stat::REPLY_DEFAULT {
            return Err(action_error(&info.id, kOfxActionLoad, status, Vec::new()));
        }
        *loaded = true;
        Ok(())
    }

    /// Load + Describe: the plugin's base descriptor.
    pub fn describe(&self, plugin: usize) -> Result<Arc<Effect>, HostError> {
        self.load(plugin)?;
        let descriptor = Effect::new(
            defaults::effect_descriptor(&self.path.to_string_lossy()),
            self.shared.clone(),
            false,
        );
        let status = self.call(
            plugin,
            kOfxActionDescribe,
            descriptor.handle(),
            None,
            None,
            &Misbehave::default(),
        );
        if status != stat::OK && status != stat::REPLY_DEFAULT {
            let messages = descriptor.messages.lock().clone();
            return Err(action_error(
                &self.plugins[plugin].id,
                kOfxActionDescribe,
                status,
                messages,
            ));
        }
        Ok(descriptor)
    }

    /// DescribeInContext on a fresh copy of the base descriptor.
    pub fn describe_in_context(
        &self,
        plugin: usize,
        base: &Effect,
        context: &str,
    ) -> Result<Arc<Effect>, HostError> {
        let contexts = base
            .props
            .strings(kOfxImageEffectPropSupportedContexts.name())
            .unwrap_or_default();
        if !contexts.iter().any(|c| c == context) {
            return Err(HostError::Usage(format!(
                "{} does not support context {context}; it supports {}",
                self.plugins[plugin].id,
                contexts.join(", ")
            )));
        }
        let props = PropertySet::copy_of("effect descriptor in context", &base.props);
        let descriptor = Effect::new(props, self.shared.clone(), false);
        let in_args = PropertySet::new("DescribeInContext inArgs");
        in_args.define(kOfxImageEffectPropContext.name(), Value::str(context));
        let status = self.call(
            plugin,
            kOfxImageEffectActionDescribeInContext,
            descriptor.handle(),
            Some(&in_args),
            None,
            &Misbehave::default(),
        );
        if status != stat::OK && status != stat::REPLY_DEFAULT {
            let messages = descriptor.messages.lock().clone();
            return Err(action_error(
                &self.plugins[plugin].id,
                kOfxImageEffectActionDescribeInContext,
                status,
                messages,
            ));
        }
        Ok(descriptor)
    }

    /// Messages posted with no instance handle.
    pub fn orphan_messages() -> Vec<crate::objects::Message> {
        ORPHAN_MESSAGES.lock().clone()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for (index, info) in self.plugins.iter().enumerate() {
            if *info.loaded.lock() {
                let status = self.call(
                    index,
                    kOfxActionUnload,
                    0,
                    None,
                    None,
                    &Misbehave::default(),
                );
                if status != stat::OK && status != stat::REPLY_DEFAULT {
                    log::warn!("{}: Unload answered {}", info.id, status_name(status));
                }
            }
        }
        let _ = &self.host;
        let _ = &self.library;
    }
}

pub fn action_error(
    plugin: &str,
    action: &CStr,
    status: OfxStatus,
    messages: Vec<crate::objects::Message>,
) -> HostError {
    HostError::Action {
        plugin: plugin.to_string(),
        action: action.name().to_string(),
        status,
        messages,
    }
}

/// The suite name as a C string, for callers outside the ABI layer.
pub fn c(text: &str) -> CString {
    crate::props::cstring(text)
}
