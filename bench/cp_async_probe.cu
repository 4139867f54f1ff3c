// Does compute-sanitizer count a cp.async of fewer source bytes than its size (the zero-fill form,
// "cp.async.ca.shared.global [s], [g], 8, src_size") as a read of all 8 bytes? The scan kernel's copies of
// a tensor's last, partial granule were written that way (bench/RESULTS.md, fourteenth session).
//   nvcc -arch=sm_90 -o /tmp/cp_async_probe bench/cp_async_probe.cu
//   compute-sanitizer --tool memcheck /tmp/cp_async_probe 2   # 2 source bytes of the 10-byte buffer's last granule
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

__global__ void probe(unsigned char const* g, int srcBytes, unsigned* out)
{
    __shared__ __align__(8) unsigned s[2];
    unsigned const addr = static_cast<unsigned>(__cvta_generic_to_shared(s));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(addr), "l"(g + 8), "r"(srcBytes) : "memory");
    asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
    out[0] = s[0];
    out[1] = s[1];
}

int main(int argc, char** argv)
{
    int const srcBytes = argc > 1 ? std::atoi(argv[1]) : 2;
    unsigned char* g = nullptr;
    unsigned* out = nullptr;
    unsigned char host[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    unsigned res[2] = {0, 0};
    if (cudaMalloc(&g, 10) != cudaSuccess || cudaMalloc(&out, 8) != cudaSuccess
        || cudaMemcpy(g, host, 10, cudaMemcpyHostToDevice) != cudaSuccess)
    {
        std::printf("setup failed\n");
        return 1;
    }
    probe<<<1, 1>>>(g, srcBytes, out);
    cudaError_t const rc = cudaDeviceSynchronize();
    if (rc != cudaSuccess || cudaMemcpy(res, out, 8, cudaMemcpyDeviceToHost) != cudaSuccess)
    {
        std::printf("kernel failed: %s\n", cudaGetErrorString(rc));
        return 1;
    }
    std::printf("src_size %d: shared words %08x %08x (expect the bytes 9, 10 then zeros)\n", srcBytes, res[0], res[1]);
    return 0;
}
