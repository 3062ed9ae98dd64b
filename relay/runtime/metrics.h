// metrics.h — counters, gauges and histograms for Prometheus, and their
// text exposition (format 0.0.4).
//
// A Registry holds families (a name, HELP text, label names); a family hands
// out one series per set of label values. Updating a series is a relaxed
// atomic add, from any thread (the loop, the committer, workers); creating a
// series or rendering takes the registry's lock. Label sets must stay
// bounded: callers label by outcome, mode or a destination named in policy,
// never by something a peer chooses (a recipient domain, an address).
// Gauges that are cheaper to read than to keep (queue size, open fds, RSS)
// are callbacks, asked at scrape time on the loop thread.
//
// Names follow Prometheus conventions: danerelay_..._total for counters,
// base units (_seconds, _bytes). render() writes HELP and TYPE for every
// family, escapes label values (\\, \", \n) and HELP text (\\, \n), and
// histograms as cumulative _bucket{le=...} series with +Inf, _sum, _count.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace danerelay::relay::metrics {

using Labels = std::vector<std::string>;  // values, in the family's label order

class Counter {
  public:
    void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
    uint64_t value() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<uint64_t> v_{0};
};

class Gauge {
  public:
    void set(double v) { v_.store(v, std::memory_order_relaxed); }
    void add(double d);
    double value() const { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> v_{0};
};

class Histogram {
  public:
    explicit Histogram(const std::vector<double>* bounds);
    void observe(double v);
    // Cumulative counts per bound (the last is +Inf), the sum, the count.
    std::vector<uint64_t> cumulative() const;
    double sum() const { return sum_.load(std::memory_order_relaxed); }
    uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  private:
    const std::vector<double>* bounds_;
    std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds + 1 (+Inf)
    std::atomic<double> sum_{0};
    std::atomic<uint64_t> count_{0};
};

enum class Type { Counter, Gauge, Histogram };

class Registry;

template <typename Series>
class Family {
  public:
    // The series for these label values (as many as the family's label
    // names), made on first use; the reference stays valid as long as the
    // registry.
    Series& with(const Labels& values);
    // The series of a family without labels.
    Series& get() { return with({}); }

  private:
    friend class Registry;
    Family(Registry& r, size_t index) : r_(r), index_(index) {}
    Registry& r_;
    size_t index_;
};

class Registry {
  public:
    Registry() = default;
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    Family<Counter> counter(const std::string& name, const std::string& help,
                            std::vector<std::string> labelNames = {});
    Family<Gauge> gauge(const std::string& name, const std::string& help,
                        std::vector<std::string> labelNames = {});
    // bounds: ascending upper bounds, without +Inf.
    Family<Histogram> histogram(const std::string& name, const std::string& help,
                                std::vector<double> bounds,
                                std::vector<std::string> labelNames = {});
    // A gauge read at scrape time (no labels).
    void gaugeFn(const std::string& name, const std::string& help, std::function<double()> read);
    // A counter read at scrape time (no labels), e.g. CPU seconds.
    void counterFn(const std::string& name, const std::string& help, std::function<double()> read);

    std::string render() const;

  private:
    template <typename Series>
    friend class Family;
    struct FamilyData {
        std::string name, help;
        Type type = Type::Counter;
        std::vector<std::string> labelNames;
        std::vector<double> bounds;    // histograms
        std::function<double()> read;  // callback families
        std::map<Labels, std::unique_ptr<Counter>> counters;
        std::map<Labels, std::unique_ptr<Gauge>> gauges;
        std::map<Labels, std::unique_ptr<Histogram>> histograms;
    };
    static FamilyData family(const std::string& name, const std::string& help, Type type,
                             std::vector<std::string> labelNames);
    size_t add(FamilyData f);
    void renderFamily(const FamilyData& f, std::string& out) const;
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<FamilyData>> families_;
};

// Exposed for tests.
std::string escapeLabelValue(const std::string& v);
std::string formatValue(double v);

}  // namespace danerelay::relay::metrics
