#include "server/frontend/server_flags.h"

#include "absl/time/time.h"
#include "common/command_line.h"

namespace iis {

void AddServerFlags(CLI::App& app, ServerFlags* flags) {
  using common::FlagNames;
  using common::Integer;
  ConfigOverrides& o = flags->overrides;
  app.add_option(FlagNames("config"), flags->config,
                 "Server configuration, a text-format internimage.serving.v1.ServerConfig file "
                 "(proto/internimage/serving/v1/server_config.proto). Empty: the defaults, one "
                 "model per task with seeded random weights.");
  app.add_option(FlagNames("host"), o.host,
                 "Address to listen on; replaces the host of the configuration's listen_address "
                 "(default 0.0.0.0).");
  app.add_option(FlagNames("port"), o.port,
                 "gRPC port (default 50051); 0 picks a free port. Replaces the port of "
                 "listen_address.")
      ->check(Integer());
  app.add_option(FlagNames("metrics-port"), o.metrics_port,
                 "Prometheus /metrics port (default 8002); -1 turns metrics off, 0 picks a free "
                 "port.")
      ->check(Integer());
  common::AddDurationOption(app, "drain-grace", &o.drain_grace,
                            "After SIGTERM/SIGINT, how long in-flight requests may take to "
                            "finish, e.g. 30s (default 30s).",
                            -absl::InfiniteDuration(), absl::InfiniteDuration());
  app.add_option(FlagNames("worker-threads"), o.worker_threads,
                 "Threads that decode, preprocess and postprocess (default: the number of CPU "
                 "cores).")
      ->check(Integer());
  app.add_option(FlagNames("cpu-inference-threads"), o.cpu_inference_threads,
                 "Intra-op threads of each CPU forward pass (default: the number of CPU cores).")
      ->check(Integer());
  app.add_option(FlagNames("device"), o.device,
                 "Device of every model: auto, cpu, cuda or cuda:N (default: each model's, auto).");
  app.add_option(FlagNames("max-message-bytes"), o.max_message_bytes,
                 "Largest request or answer message in bytes (default 67108864 = 64 MiB).")
      ->check(Integer());
  app.add_option(FlagNames("max-image-pixels"), o.max_image_pixels,
                 "Largest image (width x height) accepted, read from the header before decoding "
                 "(default 40000000).")
      ->check(Integer());
  app.add_option(FlagNames("tls-cert"), o.tls_cert_file,
                 "PEM certificate chain of the server; with --tls-key turns TLS on.");
  app.add_option(FlagNames("tls-key"), o.tls_key_file, "PEM private key of the server.");
  app.add_option(FlagNames("tls-client-ca"), o.tls_client_ca_file,
                 "PEM CA certificate(s) that sign client certificates; set to require mutual TLS.");
  app.add_option(FlagNames("port-file"), flags->port_file,
                 "Once serving, write the bound gRPC port to this file (useful with --port 0).");
  app.add_option(FlagNames("metrics-port-file"), flags->metrics_port_file,
                 "Once serving, write the bound metrics port to this file (useful with "
                 "--metrics-port 0).");
  app.add_flag(FlagNames("print-config"), flags->print_config,
               "Print the effective configuration (file + defaults + flags) and exit.");
}

}  // namespace iis
