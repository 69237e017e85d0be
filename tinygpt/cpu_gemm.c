// One slice of out[b] = A[b] @ B[b] in float32, BLAS-style: blocks of A and B are copied ("packed") into scratch
// memory in the order the inner kernel reads them, and the inner kernel keeps a MR x NR block of the output in
// vector registers while it streams through K. tinygpt/cpu_gemm.py fills in the @NAME@ words (sizes, strides and
// the kernel's buffers) and hands the result to tinygrad as the body of a custom kernel, which clang compiles
// freestanding: no libc here, so no memcpy or memset either. Every size and stride is a compile-time constant.
{
  typedef float vf __attribute__((vector_size(@VW@ * 4), aligned(4)));
  enum { M = @M@, N = @N@, K = @K@, BATCH = @BATCH@, SLICES = @SLICES@, MR = @MR@, NR = 2 * @VW@, VW = @VW@,
         MC = @MC@, KC = @KC@, NC = @NC@ };
  const long SA_B = @SA_B@, SA_M = @SA_M@, SA_K = @SA_K@;  // element strides of A, B and out
  const long SB_B = @SB_B@, SB_K = @SB_K@, SB_N = @SB_N@;
  const long SC_B = (long)M * N, SC_M = N;
  const long slice = @SLICE@;
  float *const out = @OUT@;
  const float *const a_all = @A@, *const b_all = @B@;
  float *const pack_a = @SCRATCH@ + slice * (MC * KC + KC * NC);
  float *const pack_b = pack_a + MC * KC;

  // this slice's share: whole matrices when there are enough of them, else a band of rows (whole MR blocks)
  long b_lo = 0, b_hi = BATCH, m_lo = 0, m_hi = M;
  if (BATCH >= SLICES) {
    b_lo = slice * BATCH / SLICES;
    b_hi = (slice + 1) * BATCH / SLICES;
  } else {
    const long blocks = (M + MR - 1) / MR;
    m_lo = slice * blocks / SLICES * MR;
    m_hi = (slice + 1) * blocks / SLICES * MR;
    if (m_hi > M) m_hi = M;
  }

  for (long bt = b_lo; bt < b_hi; bt++) {
    const float *const A = a_all + bt * SA_B;
    const float *const B = b_all + bt * SB_B;
    float *const C = out + bt * SC_B;
    for (long jc = 0; jc < N; jc += NC) {
      const long nc = N - jc < NC ? N - jc : NC;
      for (long pc = 0; pc < K; pc += KC) {
        const long kc = K - pc < KC ? K - pc : KC;
        // B[pc:pc+kc, jc:jc+nc] -> panels of NR columns, row by row; columns past N are zeros
        for (long j = 0; j < nc; j += NR) {
          float *const panel = pack_b + j * kc;
          for (long k = 0; k < kc; k++)
            for (long jj = 0; jj < NR; jj++)
              panel[k * NR + jj] = j + jj < nc ? B[(pc + k) * SB_K + (jc + j + jj) * SB_N] : 0.0f;
        }
        for (long ic = m_lo; ic < m_hi; ic += MC) {
          const long mc = m_hi - ic < MC ? m_hi - ic : MC;
          // A[ic:ic+mc, pc:pc+kc] -> panels of MR rows, column by column; rows past the band are zeros
          for (long i = 0; i < mc; i += MR) {
            float *const panel = pack_a + i * kc;
            if (SA_K == 1) {
              for (long ii = 0; ii < MR; ii++)
                for (long k = 0; k < kc; k++)
                  panel[k * MR + ii] = i + ii < mc ? A[(ic + i + ii) * SA_M + pc + k] : 0.0f;
            } else {
              for (long k = 0; k < kc; k++)
                for (long ii = 0; ii < MR; ii++)
                  panel[k * MR + ii] = i + ii < mc ? A[(ic + i + ii) * SA_M + (pc + k) * SA_K] : 0.0f;
            }
          }
          for (long j = 0; j < nc; j += NR) {
            for (long i = 0; i < mc; i += MR) {
              // the inner kernel: an MR x NR block of the product, in registers
              const float *pa = pack_a + i * kc, *pb = pack_b + j * kc;
              vf acc[MR][2];
              for (int ii = 0; ii < MR; ii++) acc[ii][0] = acc[ii][1] = (vf){0};
              for (long k = 0; k < kc; k++, pa += MR, pb += NR) {
                const vf b0 = *(const vf *)pb, b1 = *(const vf *)(pb + VW);
                for (int ii = 0; ii < MR; ii++) {
                  acc[ii][0] += pa[ii] * b0;
                  acc[ii][1] += pa[ii] * b1;
                }
              }
              // write it out, adding to what earlier K blocks wrote
              float *const c = C + (ic + i) * SC_M + jc + j;
              const long rows = mc - i < MR ? mc - i : MR, cols = nc - j < NR ? nc - j : NR;
              if (cols == NR) {
                for (long ii = 0; ii < rows; ii++) {
                  vf *const row = (vf *)(c + ii * SC_M);
                  row[0] = pc ? row[0] + acc[ii][0] : acc[ii][0];
                  row[1] = pc ? row[1] + acc[ii][1] : acc[ii][1];
                }
              } else {
                for (long ii = 0; ii < rows; ii++)
                  for (long jj = 0; jj < cols; jj++) {
                    const float v = jj < VW ? acc[ii][0][jj] : acc[ii][1][jj - VW];
                    c[ii * SC_M + jj] = pc ? c[ii * SC_M + jj] + v : v;
                  }
              }
            }
          }
        }
      }
    }
  }
}
