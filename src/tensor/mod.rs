//! Tensors: shape, strides, dtype and storage on a device.
