/*
 * Link-time stand-in for libnvinfer.so.<major>'s two C entry points the TensorRT 8.x plugin calls
 * (getPluginRegistry, getLogger). The plugin links against this stub (built into build/stubs/, never
 * installed, never on the plugin's RPATH) so that it records a dependency on libnvinfer.so.<major>;
 * at run time the real libnvinfer that trtexec / polygraphy / the application loaded provides them.
 * The host test driver preloads the stub itself: both return null, so nothing is registered.
 */
#include "NvInferRuntime.h"

extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginRegistry* getPluginRegistry() noexcept
{
    return nullptr;
}

extern "C" __attribute__((visibility("default"))) nvinfer1::ILogger* getLogger() noexcept
{
    return nullptr;
}
