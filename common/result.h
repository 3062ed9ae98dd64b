// result.h — the small vocabulary every module uses for expected failures.
//
// A Result<T> holds either a value or an Error. An Error's kind says what the
// caller should do with it: Temporary maps onto a 4xx reply or a deferral,
// Permanent onto a 5xx reply or a bounce, Internal onto a 4xx plus a loud log
// line (something on our side is broken; the peer is not at fault).
// Exceptions are kept for start-up and configuration load; the data path
// returns Results.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace danerelay {

enum class ErrorKind { Temporary, Permanent, Internal };

struct Error {
    ErrorKind kind = ErrorKind::Internal;
    std::string message;

    static Error temporary(std::string m) { return {ErrorKind::Temporary, std::move(m)}; }
    static Error permanent(std::string m) { return {ErrorKind::Permanent, std::move(m)}; }
    static Error internal(std::string m) { return {ErrorKind::Internal, std::move(m)}; }
};

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
    Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() {
        assert(ok());
        return std::get<0>(v_);
    }
    const T& value() const {
        assert(ok());
        return std::get<0>(v_);
    }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const {
        assert(!ok());
        return std::get<1>(v_);
    }

  private:
    std::variant<T, Error> v_;
};

struct Ok {};

// Result<void> in spirit: success carries nothing.
using Status = Result<Ok>;

inline Status okStatus() {
    return Ok{};
}

}  // namespace danerelay
