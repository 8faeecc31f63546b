/* Entry points of libastroedge_trt.so (plugins AMSU and SpikeMatMul), the TensorRT 10+ plugin-library convention that
 * `trtexec --dynamicPlugins=...`, `IPluginRegistry::loadLibrary` and the Python
 * `registry.load_library` look up with dlsym:
 *
 *   extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder*);
 *   extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
 *
 * The library registers nothing by itself when loaded (loadLibrary fails if a creator is already
 * registered); an application that links it directly registers the creators from getCreators() with
 * IPluginRegistry::registerCreator. Only these two symbols are exported (-fvisibility=hidden).
 */
#include <atomic>
#include <cstdint>
#include <cstdio>

#include "amsu_trt_plugin.h"
#include "spikematmul_trt_plugin.h"
#include "trt_log.h"

#define ASTROEDGE_TRT_EXPORT __attribute__((visibility("default")))

namespace astroedge {
namespace trt {
namespace {

std::atomic<nvinfer1::ILoggerFinder*> g_logger_finder{nullptr};

char const* severity_name(nvinfer1::ILogger::Severity severity) {
  switch (severity) {
    case nvinfer1::ILogger::Severity::kINTERNAL_ERROR:
      return "internal error";
    case nvinfer1::ILogger::Severity::kERROR:
      return "error";
    case nvinfer1::ILogger::Severity::kWARNING:
      return "warning";
    case nvinfer1::ILogger::Severity::kINFO:
      return "info";
    case nvinfer1::ILogger::Severity::kVERBOSE:
      return "verbose";
  }
  return "log";
}

}  // namespace

void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept {
  nvinfer1::ILoggerFinder* finder = g_logger_finder.load();
  nvinfer1::ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
  if (logger != nullptr) {
    logger->log(severity, message.c_str());
  } else if (severity <= nvinfer1::ILogger::Severity::kWARNING) {
    // No TensorRT logger (library linked directly, setLoggerFinder never called): errors still show.
    std::fprintf(stderr, "[astroedge TensorRT plugin] %s: %s\n", severity_name(severity), message.c_str());
  }
}

}  // namespace trt
}  // namespace astroedge

extern "C" ASTROEDGE_TRT_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
  astroedge::trt::g_logger_finder.store(finder);
}

extern "C" ASTROEDGE_TRT_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  // Function-local statics: constructed on first use, after TensorRT has loaded the library.
  static astroedge::trt::AmsuPluginCreator amsu_creator;
  static astroedge::trt::SpikeMatMulPluginCreator spikematmul_creator;
  static nvinfer1::IPluginCreatorInterface* const creators[] = {&amsu_creator, &spikematmul_creator};
  nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
  return creators;
}
