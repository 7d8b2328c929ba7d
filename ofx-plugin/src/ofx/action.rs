//! The action string, parsed once at the entry point into a typed value.

use ofx_sys as sys;
use std::ffi::CStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Load,
    Describe,
    Unload,
    PurgeCaches,
    SyncPrivateData,
    CreateInstance,
    DestroyInstance,
    InstanceChanged,
    BeginInstanceChanged,
    EndInstanceChanged,
    BeginInstanceEdit,
    EndInstanceEdit,
    DescribeInContext,
    GetRegionOfDefinition,
    GetRegionsOfInterest,
    GetTimeDomain,
    GetFramesNeeded,
    GetClipPreferences,
    IsIdentity,
    Render,
    BeginSequenceRender,
    EndSequenceRender,
    /// An action this plug-in does not know; answered with ReplyDefault.
    Other(String),
}

const TABLE: &[(&CStr, Action)] = &[
    (sys::kOfxActionLoad, Action::Load),
    (sys::kOfxActionDescribe, Action::Describe),
    (sys::kOfxActionUnload, Action::Unload),
    (sys::kOfxActionPurgeCaches, Action::PurgeCaches),
    (sys::kOfxActionSyncPrivateData, Action::SyncPrivateData),
    (sys::kOfxActionCreateInstance, Action::CreateInstance),
    (sys::kOfxActionDestroyInstance, Action::DestroyInstance),
    (sys::kOfxActionInstanceChanged, Action::InstanceChanged),
    (
        sys::kOfxActionBeginInstanceChanged,
        Action::BeginInstanceChanged,
    ),
    (
        sys::kOfxActionEndInstanceChanged,
        Action::EndInstanceChanged,
    ),
    (sys::kOfxActionBeginInstanceEdit, Action::BeginInstanceEdit),
    (sys::kOfxActionEndInstanceEdit, Action::EndInstanceEdit),
    (
        sys::kOfxImageEffectActionDescribeInContext,
        Action::DescribeInContext,
    ),
    (
        sys::kOfxImageEffectActionGetRegionOfDefinition,
        Action::GetRegionOfDefinition,
    ),
    (
        sys::kOfxImageEffectActionGetRegionsOfInterest,
        Action::GetRegionsOfInterest,
    ),
    (
        sys::kOfxImageEffectActionGetTimeDomain,
        Action::GetTimeDomain,
    ),
    (
        sys::kOfxImageEffectActionGetFramesNeeded,
        Action::GetFramesNeeded,
    ),
    (
        sys::kOfxImageEffectActionGetClipPreferences,
        Action::GetClipPreferences,
    ),
    (sys::kOfxImageEffectActionIsIdentity, Action::IsIdentity),
    (sys::kOfxImageEffectActionRender, Action::Render),
    (
        sys::kOfxImageEffectActionBeginSequenceRender,
        Action::BeginSequenceRender,
    ),
    (
        sys::kOfxImageEffectActionEndSequenceRender,
        Action::EndSequenceRender,
    ),
];

impl Action {
    pub fn parse(name: &CStr) -> Action {
        TABLE
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, action)| action.clone())
            .unwrap_or_else(|| Action::Other(name.to_string_lossy().into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_action_parses_to_itself_and_unknown_is_kept() {
        for (name, action) in TABLE {
            assert_eq!(&Action::parse(name), action);
        }
        assert_eq!(
            Action::parse(c"OfxActionSomethingNew"),
            Action::Other("OfxActionSomethingNew".into())
        );
        // A prefix of a known action is not that action.
        assert!(matches!(Action::parse(c"OfxActionLoa"), Action::Other(_)));
    }
}
