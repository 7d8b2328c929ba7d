//! Plain rectangles and ranges, free of any host type.

/// Half-open integer rectangle in pixel coordinates (y up, as OFX has it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RectI {
    pub x1: i32,
    pub y1: i32,
    pub x2: i32,
    pub y2: i32,
}

impl RectI {
    pub fn width(&self) -> usize {
        (self.x2 as i64 - self.x1 as i64).max(0) as usize
    }
    pub fn height(&self) -> usize {
        (self.y2 as i64 - self.y1 as i64).max(0) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.width() == 0 || self.height() == 0
    }
    pub fn intersect(&self, other: &RectI) -> RectI {
        RectI {
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
            x2: self.x2.min(other.x2).max(self.x1.max(other.x1)),
            y2: self.y2.min(other.y2).max(self.y1.max(other.y1)),
        }
    }
}

/// Rectangle in canonical coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct RectD {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl RectD {
    pub fn is_valid(&self) -> bool {
        [self.x1, self.y1, self.x2, self.y2]
            .iter()
            .all(|v| v.is_finite())
            && self.x2 > self.x1
            && self.y2 > self.y1
    }

    /// The pixel rectangle covering this canonical one at `scale` and pixel
    /// aspect `par` (canonical x = pixel x * par / scale).
    pub fn to_pixels(&self, scale: (f64, f64), par: f64) -> RectI {
        let par = if par.is_finite() && par > 0.0 {
            par
        } else {
            1.0
        };
        let clamp = |v: f64| v.clamp(i32::MIN as f64 / 2.0, i32::MAX as f64 / 2.0);
        RectI {
            x1: clamp((self.x1 * scale.0 / par).floor()) as i32,
            y1: clamp((self.y1 * scale.1).floor()) as i32,
            x2: clamp((self.x2 * scale.0 / par).ceil()) as i32,
            y2: clamp((self.y2 * scale.1).ceil()) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_to_pixels_honours_scale_and_aspect() {
        let r = RectD {
            x1: 0.0,
            y1: 0.0,
            x2: 1920.0,
            y2: 1080.0,
        };
        assert_eq!(
            r.to_pixels((1.0, 1.0), 1.0),
            RectI {
                x1: 0,
                y1: 0,
                x2: 1920,
                y2: 1080
            }
        );
        assert_eq!(
            r.to_pixels((0.5, 0.5), 1.0),
            RectI {
                x1: 0,
                y1: 0,
                x2: 960,
                y2: 540
            }
        );
        // Anamorphic: canonical width is display width; pixels are fewer.
        assert_eq!(r.to_pixels((1.0, 1.0), 2.0).x2, 960);
        assert_eq!(r.to_pixels((1.0, 1.0), f64::NAN).x2, 1920);
    }

    #[test]
    fn intersection_never_inverts() {
        let a = RectI {
            x1: 0,
            y1: 0,
            x2: 10,
            y2: 10,
        };
        let b = RectI {
            x1: 20,
            y1: 20,
            x2: 30,
            y2: 30,
        };
        assert!(a.intersect(&b).is_empty());
        assert_eq!(
            a.intersect(&RectI {
                x1: 5,
                y1: -5,
                x2: 15,
                y2: 5
            }),
            RectI {
                x1: 5,
                y1: 0,
                x2: 10,
                y2: 5
            }
        );
    }
}
