// Status and Result<T>: how the runtime reports failure without exceptions.
// A Status is "ok" or an error code with a message written for the person who
// will read it ("sagac file is truncated: ..."). Result<T> holds either a value
// or a non-ok Status. Exceptions stay inside the parser; everything the
// runtime returns across its API is one of these.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace saga {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,  // Bad input from the caller (JSON input, options).
  kCorrupt,          // A file or record failed its checks (bad magic, checksum, verifier).
  kUnsupported,      // Valid, but needs a newer runtime (format version, unknown function).
  kNotFound,
  kIoError,  // The operating system said no (open, read, write, fsync).
  kBusy,     // Another process holds a lock we need.
  kInternal,
  // The request is valid but the thing it names is in a state where it cannot
  // apply (cancelling a finished instance); nothing was changed.
  kFailedPrecondition,
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  // The error; only meaningful when !ok().
  const Status& status() const { return std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace saga
