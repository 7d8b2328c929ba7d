//! Raw OpenFX bindings, shared by the plugin (`genfx-ofx`) and the headless
//! host (`genfx-host`), generated from the headers in `include/`.
