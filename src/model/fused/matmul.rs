//! Matrix products on f32 slices, through the `gemm` crate (the kernels burn's flex backend
//! runs): a checked, safe front to its raw-pointer interface.

/// A read-only matrix view: element `(r, c)` is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// The row-major `rows x cols` matrix at the start of `data`.
    ///
    /// # Panics
    /// When `data` is shorter than `rows * cols`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "a {rows} x {cols} matrix needs {} values, the slice has {}",
            rows * cols,
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The `rows x cols` view of `data` with element `(r, c)` at `r * row_stride + c *
    /// col_stride` (rows may overlap: an im2col matrix is such a view).
    ///
    /// # Panics
    /// When the last element lies outside `data`.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(
                last < data.len(),
                "a {rows} x {cols} view with strides {row_stride}, {col_stride} reads element \
                 {last} of {}",
                data.len()
            );
        }
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// `out = a b` (or `out += a b` when `accumulate`), `out` row-major `a.rows() x b.cols()`. Each
/// row of `out` is the same whatever the number of rows of `a`.
///
/// # Panics
/// When the inner dimensions differ or `out` has the wrong length.
#[allow(unsafe_code)]
pub fn matmul(out: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        b.rows, k,
        "inner dimensions differ: {m} x {k} times {} x {n}",
        b.rows
    );
    assert_eq!(out.len(), m * n, "the output of a {m} x {n} product");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    if m == 1 && n > 1 {
        // gemm multiplies a single row by another route (a matrix-vector product that sums in
        // another order): the row is multiplied as the first of two, so that a row's result
        // never depends on how many rows are multiplied with it (a stream scores one window at
        // a time, a batch many, and both give the same scores).
        let row: Vec<f32> = (0..k).map(|c| a.data[c * a.col_stride]).collect();
        let rows = [row.as_slice(), row.as_slice()].concat();
        let mut both = if accumulate {
            [&*out, &*out].concat()
        } else {
            vec![0.0; 2 * n]
        };
        matmul(&mut both, MatRef::new(&rows, 2, k), b, accumulate);
        out.copy_from_slice(&both[..n]);
        return;
    }
    // Every element the kernel reads lies inside its slice: the largest offset of a view is
    // (rows - 1) * row_stride + (cols - 1) * col_stride, checked by `MatRef::new` and
    // `MatRef::strided` and unchanged by `t`; checked again here.
    for view in [&a, &b] {
        let last = (view.rows - 1) * view.row_stride + (view.cols - 1) * view.col_stride;
        assert!(last < view.data.len());
    }
    // SAFETY: the three regions are valid for the extents and strides passed (checked above and
    // by the length of `out`), `out` is exclusively borrowed so it aliases neither input, and
    // the strides fit in isize because they index existing slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let at = |m: &MatRef<'_>, r: usize, c: usize| m.data[r * m.row_stride + c * m.col_stride];
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
            }
        }
        out
    }

    #[test]
    fn products_of_plain_and_transposed_views_match_the_schoolbook_sum() {
        let a: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect(); // 3 x 5
        let b: Vec<f32> = (0..20).map(|i| (i as f32 * 0.11).cos()).collect(); // 5 x 4
        let (ma, mb) = (MatRef::new(&a, 3, 5), MatRef::new(&b, 5, 4));
        let mut out = vec![0.0; 12];
        matmul(&mut out, ma, mb, false);
        for (x, y) in out.iter().zip(naive(ma, mb)) {
            assert!((x - y).abs() < 1e-5);
        }
        // a^T a (5 x 5), accumulated onto ones.
        let mut acc = vec![1.0; 25];
        matmul(&mut acc, ma.t(), ma, true);
        for (x, y) in acc.iter().zip(naive(ma.t(), ma)) {
            assert!((x - (y + 1.0)).abs() < 1e-5);
        }
    }

    #[test]
    fn a_row_multiplied_alone_equals_the_same_row_among_many() {
        let (k, n) = (120, 100);
        let a: Vec<f32> = (0..64 * k).map(|i| (i as f32 * 0.013).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.007).cos()).collect();
        let mb = MatRef::new(&b, k, n);
        for accumulate in [false, true] {
            let mut many: Vec<f32> = (0..64 * n).map(|i| i as f32 * 0.5).collect();
            let mut one = many[5 * n..6 * n].to_vec();
            matmul(&mut many, MatRef::new(&a, 64, k), mb, accumulate);
            matmul(
                &mut one,
                MatRef::new(&a[5 * k..6 * k], 1, k),
                mb,
                accumulate,
            );
            assert_eq!(one, many[5 * n..6 * n], "accumulate {accumulate}");
        }
    }
}
