//! The watermark's channel code: the 64-bit payload with a CRC-16 is sent
//! through a rate-1/2, constraint-length-7 convolutional code (generators
//! 171 and 133 octal, the code of Voyager and 802.11) and decoded by a
//! soft-decision Viterbi decoder. Soft decisions matter here: each coded
//! bit arrives as a correlation whose size says how sure it is, and weak
//! frames (a dark shot, heavy compression) still decode when the strong
//! bits carry the weak ones.

/// Payload bits carried.
pub const PAYLOAD_BITS: usize = 64;
/// Payload and CRC-16.
const MESSAGE_BITS: usize = PAYLOAD_BITS + 16;
const CONSTRAINT: usize = 7;
const STATES: usize = 1 << (CONSTRAINT - 1);
const G1: u32 = 0o171;
const G2: u32 = 0o133;
/// Coded bits on the channel: two per message bit and per tail bit.
pub const CODED_BITS: usize = 2 * (MESSAGE_BITS + CONSTRAINT - 1);

/// CRC-16/CCITT-FALSE of the payload's bytes, big-endian.
fn crc16(payload: u64) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for byte in payload.to_be_bytes() {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn message_bits(payload: u64) -> Vec<u8> {
    let crc = crc16(payload);
    (0..PAYLOAD_BITS)
        .map(|i| ((payload >> (PAYLOAD_BITS - 1 - i)) & 1) as u8)
        .chain((0..16).map(|i| ((crc >> (15 - i)) & 1) as u8))
        .collect()
}

fn parity(v: u32) -> u8 {
    (v.count_ones() & 1) as u8
}

/// The coded bits (0/1) of `payload`.
pub fn encode(payload: u64) -> Vec<u8> {
    let mut state: u32 = 0;
    let mut out = Vec::with_capacity(CODED_BITS);
    let tail = std::iter::repeat_n(0u8, CONSTRAINT - 1);
    for bit in message_bits(payload).into_iter().chain(tail) {
        let reg = (u32::from(bit) << (CONSTRAINT - 1)) | state;
        out.push(parity(reg & G1));
        out.push(parity(reg & G2));
        state = reg >> 1;
    }
    out
}

/// The most likely payload given soft values (positive means a coded 1),
/// and whether its CRC holds.
pub fn decode(soft: &[f64]) -> (u64, bool) {
    assert_eq!(soft.len(), CODED_BITS, "one soft value per coded bit");
    const NONE: f64 = f64::NEG_INFINITY;
    let steps = MESSAGE_BITS + CONSTRAINT - 1;
    let mut metric = vec![NONE; STATES];
    metric[0] = 0.0;
    // the input bit and previous state that reached each state at each step
    let mut from = vec![[0u8; STATES]; steps];
    let mut bits = vec![[0u8; STATES]; steps];
    for step in 0..steps {
        let (a, b) = (soft[2 * step], soft[2 * step + 1]);
        let mut next = vec![NONE; STATES];
        // the tail drives the encoder back to state 0 with zeros
        let inputs: &[u32] = if step >= MESSAGE_BITS { &[0] } else { &[0, 1] };
        for (state, &m) in metric.iter().enumerate() {
            if m == NONE {
                continue;
            }
            for &bit in inputs {
                let reg = (bit << (CONSTRAINT - 1)) | state as u32;
                let sign = |p: u8| if p == 1 { 1.0 } else { -1.0 };
                let gain = sign(parity(reg & G1)) * a + sign(parity(reg & G2)) * b;
                let to = (reg >> 1) as usize;
                if m + gain > next[to] {
                    next[to] = m + gain;
                    from[step][to] = state as u8;
                    bits[step][to] = bit as u8;
                }
            }
        }
        metric = next;
    }
    let mut state = 0usize;
    let mut decoded = vec![0u8; steps];
    for step in (0..steps).rev() {
        decoded[step] = bits[step][state];
        state = from[step][state] as usize;
    }
    let payload = decoded[..PAYLOAD_BITS]
        .iter()
        .fold(0u64, |acc, &b| (acc << 1) | u64::from(b));
    let crc = decoded[PAYLOAD_BITS..MESSAGE_BITS]
        .iter()
        .fold(0u16, |acc, &b| (acc << 1) | u16::from(b));
    (payload, crc == crc16(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soft(coded: &[u8], flip: &[usize], weak: f64) -> Vec<f64> {
        coded
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let v = if c == 1 { 1.0 } else { -1.0 };
                if flip.contains(&i) {
                    -v * weak
                } else {
                    v
                }
            })
            .collect()
    }

    #[test]
    fn a_clean_codeword_decodes_to_its_payload() {
        for payload in [0u64, u64::MAX, 0x4758_1234_5678_9ABC] {
            let coded = encode(payload);
            assert_eq!(coded.len(), CODED_BITS);
            assert_eq!(decode(&soft(&coded, &[], 1.0)), (payload, true));
        }
    }

    #[test]
    fn scattered_errors_are_corrected() {
        let payload = 0x4758_0000_DEAD_BEEF;
        let coded = encode(payload);
        // hard errors spread out further than the code's free distance
        let flips: Vec<usize> = (0..CODED_BITS).step_by(19).collect();
        assert_eq!(decode(&soft(&coded, &flips, 1.0)), (payload, true));
        // Gaussian noise of σ = 0.6 on ±1 (Eb/N0 ≈ 4.4 dB): about 5 % of
        // the coded bits arrive with the wrong sign
        let mut state = 99u64;
        let mut gauss = || {
            let mut u = || {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()
        };
        let noisy: Vec<f64> = soft(&coded, &[], 1.0)
            .into_iter()
            .map(|v| v + 0.6 * gauss())
            .collect();
        let wrong = noisy
            .iter()
            .zip(&coded)
            .filter(|(v, &c)| (**v > 0.0) != (c == 1))
            .count();
        assert!(wrong > 0, "the noise flipped nothing");
        assert_eq!(decode(&noisy), (payload, true), "{wrong} wrong signs");
    }

    #[test]
    fn noise_does_not_pass_the_crc() {
        let mut state = 12345u64;
        let mut passed = 0;
        for _ in 0..2000 {
            let noise: Vec<f64> = (0..CODED_BITS)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                })
                .collect();
            passed += usize::from(decode(&noise).1);
        }
        // one in 65 536 by chance
        assert!(passed <= 1, "{passed} of 2000 noise vectors passed the CRC");
    }
}
