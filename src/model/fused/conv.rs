//! The CNN encoder: two "same"-padded kernel-3 convolutions, each followed by ReLU and
//! max-pooling of 2 along time, on channels-last buffers; convolutions as matrix products of
//! an im2col view (no copy) and the kernel.

use super::ConvAt;
use super::dense::{add_column_sums, relu, relu_backward};
use super::matmul::{MatRef, matmul};
use super::workspace::{Workspace, sized, sized_list};

/// Runs the CNN encoder on `x: [n, w]`; returns its number of output features (the output
/// itself is the workspace's sixth encoder buffer, `[n, C * L]`).
pub(super) fn encoder_forward(
    conv1: &ConvAt,
    conv2: &ConvAt,
    w: usize,
    params: &[f32],
    x: &[f32],
    n: usize,
    ws: &mut Workspace,
) -> usize {
    let c = conv2.c_out;
    let (half, quarter) = (w / 2, (w / 2) / 2);
    kernel_matrix(params, conv1, sized(&mut ws.kernel1, 3 * conv1.c_in * c));
    kernel_matrix(params, conv2, sized(&mut ws.kernel2, 3 * conv2.c_in * c));
    let [x_padded, out1, pool1, out2, pool2, feat] = sized_list(&mut ws.encoder, 6) else {
        unreachable!("six buffers")
    };
    // Each window with a zero before and after it ("same" padding).
    let x_padded = sized(x_padded, n * (w + 2));
    for (dst, src) in x_padded.chunks_exact_mut(w + 2).zip(x.chunks_exact(w)) {
        dst[0] = 0.0;
        dst[1..=w].copy_from_slice(src);
        dst[w + 1] = 0.0;
    }
    conv_forward(x_padded, n, w, conv1, params, &ws.kernel1, out1);
    let pool1 = sized(pool1, n * (half + 2) * c);
    pool_forward(out1, conv_out(w), pool1, padded(half), n, w, c);
    conv_forward(pool1, n, half, conv2, params, &ws.kernel2, out2);
    let pool2 = sized(pool2, n * quarter * c);
    pool_forward(out2, conv_out(half), pool2, dense_rows(quarter), n, half, c);
    // [n, L, C] -> [n, C * L], channel-major.
    let feat = sized(feat, n * c * quarter);
    for i in 0..n {
        for t in 0..quarter {
            for ch in 0..c {
                feat[i * c * quarter + ch * quarter + t] = pool2[(i * quarter + t) * c + ch];
            }
        }
    }
    c * quarter
}

/// Back-propagates the gradient at the CNN encoder's output (in `ws.d_a`) into `grad`, from the
/// activations [`encoder_forward`] left in `ws`.
pub(super) fn encoder_backward(
    conv1: &ConvAt,
    conv2: &ConvAt,
    w: usize,
    grad: &mut [f32],
    n: usize,
    ws: &mut Workspace,
) {
    let c = conv2.c_out;
    let (half, quarter) = (w / 2, (w / 2) / 2);
    let [x_padded, out1, pool1, out2, _pool2, _feat] = &ws.encoder[..6] else {
        unreachable!("six buffers")
    };
    // Features [n, C * L] -> pool2 gradient [n, L, C].
    let d_pool2 = sized(&mut ws.d_b, n * quarter * c);
    for i in 0..n {
        for t in 0..quarter {
            for ch in 0..c {
                d_pool2[(i * quarter + t) * c + ch] = ws.d_a[i * c * quarter + ch * quarter + t];
            }
        }
    }
    let d_out2 = sized(&mut ws.d_a, n * (half + 2) * c);
    pool_backward(
        d_pool2,
        dense_rows(quarter),
        out2,
        conv_out(half),
        d_out2,
        n,
        half,
        c,
    );
    relu_backward(d_out2, out2);
    let d_pool1 = sized(&mut ws.d_b, n * (half + 2) * c);
    conv_backward(
        grad,
        conv2,
        &ws.kernel2,
        pool1,
        d_out2,
        n,
        half,
        &mut ws.d_kernel,
        Some(d_pool1),
    );
    let d_out1 = sized(&mut ws.d_a, n * (w + 2) * c);
    pool_backward(d_pool1, padded(half), out1, conv_out(w), d_out1, n, w, c);
    relu_backward(d_out1, out1);
    conv_backward(
        grad,
        conv1,
        &ws.kernel1,
        x_padded,
        d_out1,
        n,
        w,
        &mut ws.d_kernel,
        None,
    );
}

/// The convolution's kernel `[c_out, c_in, 3]` as an im2col matrix `[(k, c_in), c_out]`.
fn kernel_matrix(params: &[f32], at: &ConvAt, out: &mut [f32]) {
    let weight = &params[at.weight..at.weight + at.c_out * at.c_in * 3];
    for o in 0..at.c_out {
        for c in 0..at.c_in {
            for k in 0..3 {
                out[(k * at.c_in + c) * at.c_out + o] = weight[(o * at.c_in + c) * 3 + k];
            }
        }
    }
}

/// Where one window's rows sit in a channels-last buffer: `stride` rows per window, its first
/// data row at `offset`.
#[derive(Clone, Copy, Debug)]
struct Rows {
    stride: usize,
    offset: usize,
}

/// A convolution's input of `length` steps: a zero row before and after each window.
fn padded(length: usize) -> Rows {
    Rows {
        stride: length + 2,
        offset: 1,
    }
}

/// A convolution's output over a padded input of `length` steps: the window's rows first, then
/// two rows of no meaning (computed across the boundary to the next window, never read).
fn conv_out(length: usize) -> Rows {
    Rows {
        stride: length + 2,
        offset: 0,
    }
}

/// Windows of `length` rows back to back.
fn dense_rows(length: usize) -> Rows {
    Rows {
        stride: length,
        offset: 0,
    }
}

/// The im2col matrix of a "same"-padded kernel-3 convolution, without a copy: in the padded
/// channels-last `input` (`[n, L + 2, c_in]`, see [`padded`]), row `r` of the matrix is the three
/// input rows from `r` on, which is the view with row stride `c_in` and `3 c_in` columns. Row
/// `i (L + 2) + t` is output step `t` of window `i`; the last two rows of each window are the
/// meaningless ones of [`conv_out`], and the view stops before the last window's.
fn im2col(input: &[f32], n: usize, length: usize, c_in: usize) -> MatRef<'_> {
    MatRef::strided(input, n * (length + 2) - 2, 3 * c_in, c_in, 1)
}

/// Kernel-3 "same" convolution of the padded `input` (see [`padded`]), then ReLU, into `out`
/// (`[n, L + 2, c_out]`, see [`conv_out`]): one matrix product of the im2col view and the kernel.
fn conv_forward(
    input: &[f32],
    n: usize,
    length: usize,
    at: &ConvAt,
    params: &[f32],
    kernel: &[f32],
    out: &mut Vec<f32>,
) {
    let cols = im2col(input, n, length, at.c_in);
    let out = sized(out, n * (length + 2) * at.c_out);
    let bias = &params[at.bias..at.bias + at.c_out];
    for r in out.chunks_exact_mut(at.c_out) {
        r.copy_from_slice(bias);
    }
    let rows = cols.rows();
    matmul(
        &mut out[..rows * at.c_out],
        cols,
        MatRef::new(kernel, 3 * at.c_in, at.c_out),
        true,
    );
    relu(out);
}

/// The gradient of a convolution from its output gradient `d_out` (in the [`conv_out`] layout,
/// zero on the meaningless rows): kernel and bias into `grad`, and (when asked) the gradient of
/// the padded input into `d_input` (the [`padded`] layout; its pad rows get the pads' gradient,
/// which nothing reads).
#[allow(clippy::too_many_arguments)]
fn conv_backward(
    grad: &mut [f32],
    at: &ConvAt,
    kernel: &[f32],
    input: &[f32],
    d_out: &[f32],
    n: usize,
    length: usize,
    d_kernel: &mut Vec<f32>,
    d_input: Option<&mut [f32]>,
) {
    let c_in = at.c_in;
    let cols = im2col(input, n, length, c_in);
    let rows = cols.rows();
    let d_out_values = &d_out[..rows * at.c_out];
    let d_out = MatRef::new(d_out_values, rows, at.c_out);
    let d_kernel = sized(d_kernel, 3 * c_in * at.c_out);
    matmul(d_kernel, cols.t(), d_out, false);
    let weight = &mut grad[at.weight..at.weight + at.c_out * c_in * 3];
    for o in 0..at.c_out {
        for c in 0..c_in {
            for k in 0..3 {
                weight[(o * c_in + c) * 3 + k] += d_kernel[(k * c_in + c) * at.c_out + o];
            }
        }
    }
    add_column_sums(&mut grad[at.bias..at.bias + at.c_out], d_out_values);
    if let Some(d_input) = d_input {
        // Output row r read input rows r, r + 1, r + 2 through kernel taps 0, 1, 2: each tap's
        // share is one product into the input gradient shifted by the tap.
        d_input.fill(0.0);
        for k in 0..3 {
            let tap = MatRef::new(
                &kernel[k * c_in * at.c_out..(k + 1) * c_in * at.c_out],
                c_in,
                at.c_out,
            );
            matmul(
                &mut d_input[k * c_in..(k + rows) * c_in],
                d_out,
                tap.t(),
                true,
            );
        }
    }
}

/// Max-pooling of 2 along time, channels-last, from windows of `length` steps laid out as
/// `input_rows` to windows of `length / 2` laid out as `output_rows` (an odd last step dropped;
/// the output's other rows, such as pads, set to 0).
#[allow(clippy::too_many_arguments)]
fn pool_forward(
    input: &[f32],
    input_rows: Rows,
    out: &mut [f32],
    output_rows: Rows,
    n: usize,
    length: usize,
    c: usize,
) {
    let half = length / 2;
    for i in 0..n {
        let window = &input[i * input_rows.stride * c..];
        let dst = &mut out[i * output_rows.stride * c..(i + 1) * output_rows.stride * c];
        dst[..output_rows.offset * c].fill(0.0);
        dst[(output_rows.offset + half) * c..].fill(0.0);
        for t in 0..half {
            let pair =
                &window[(input_rows.offset + 2 * t) * c..(input_rows.offset + 2 * t + 2) * c];
            let (even, odd) = pair.split_at(c);
            let d = &mut dst[(output_rows.offset + t) * c..(output_rows.offset + t + 1) * c];
            for ((d, &e), &o) in d.iter_mut().zip(even).zip(odd) {
                *d = e.max(o);
            }
        }
    }
}

/// Routes the pooled gradient `d_out` (laid out as `output_rows`) to the larger of each pair of
/// `input` (laid out as `input_rows`; the even one on ties), writing every row of `d_input` in
/// the input's layout: 0 on a dropped odd step and on rows that are not data. Branch-free, so
/// that it vectorises and does not mispredict on the random order of each pair.
#[allow(clippy::too_many_arguments)]
fn pool_backward(
    d_out: &[f32],
    output_rows: Rows,
    input: &[f32],
    input_rows: Rows,
    d_input: &mut [f32],
    n: usize,
    length: usize,
    c: usize,
) {
    let half = length / 2;
    for i in 0..n {
        let window = &input[i * input_rows.stride * c..(i + 1) * input_rows.stride * c];
        let d_window = &mut d_input[i * input_rows.stride * c..(i + 1) * input_rows.stride * c];
        let d = &d_out[(i * output_rows.stride + output_rows.offset) * c..];
        d_window[..input_rows.offset * c].fill(0.0);
        d_window[(input_rows.offset + 2 * half) * c..].fill(0.0);
        for t in 0..half {
            let at = (input_rows.offset + 2 * t) * c;
            let (even, odd) = window[at..at + 2 * c].split_at(c);
            let (d_even, d_odd) = d_window[at..at + 2 * c].split_at_mut(c);
            let d = &d[t * c..(t + 1) * c];
            for ch in 0..c {
                let even_wins = even[ch] >= odd[ch];
                d_even[ch] = if even_wins { d[ch] } else { 0.0 };
                d_odd[ch] = if even_wins { 0.0 } else { d[ch] };
            }
        }
    }
}
