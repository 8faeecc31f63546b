/* The TensorRT plugin library's logger, shared by its plugins (AMSU, SpikeMatMul). */
#ifndef ASTROEDGE_TRT_LOG_H_
#define ASTROEDGE_TRT_LOG_H_

#include <string>

#include "NvInferRuntime.h"

namespace astroedge {
namespace trt {

/* Sends a message to the logger TensorRT handed to setLoggerFinder (stderr if none was handed). */
void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept;

}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_TRT_LOG_H_
