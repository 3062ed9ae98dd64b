#include "relay/runtime/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace danerelay::relay::metrics {

void Gauge::add(double d) {
    v_.fetch_add(d, std::memory_order_relaxed);
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
    for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i] = 0;
}

void Histogram::observe(double v) {
    size_t i = 0;
    while (i < bounds_->size() && v > (*bounds_)[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative() const {
    std::vector<uint64_t> out;
    uint64_t total = 0;
    for (size_t i = 0; i <= bounds_->size(); ++i) {
        total += buckets_[i].load(std::memory_order_relaxed);
        out.push_back(total);
    }
    return out;
}

namespace {
// The exposition format's escapes: backslash and newline everywhere, the
// double quote too inside a label value.
std::string escape(const std::string& v, bool quote) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || (quote && c == '"')) {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string escapeHelp(const std::string& v) {
    return escape(v, false);
}

const char* typeName(Type t) {
    switch (t) {
        case Type::Counter:
            return "counter";
        case Type::Gauge:
            return "gauge";
        case Type::Histogram:
            return "histogram";
    }
    return "untyped";
}

// {a="x",b="y"}, with an extra label (le) if given; "" without labels.
std::string labelText(const std::vector<std::string>& names, const Labels& values,
                      const std::string& extraName = "", const std::string& extraValue = "") {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) {
        out += (out.empty() ? "" : ",") + names[i] + "=\"" + escapeLabelValue(values[i]) + "\"";
    }
    if (!extraName.empty()) {
        out += (out.empty() ? "" : ",") + extraName + "=\"" + escapeLabelValue(extraValue) + "\"";
    }
    return out.empty() ? "" : "{" + out + "}";
}
}  // namespace

std::string escapeLabelValue(const std::string& v) {
    return escape(v, true);
}

std::string formatValue(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.0f", v);
        return buf;
    }
    // The shortest text that reads back as the same double.
    char buf[32];
    for (int precision = 1; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

Registry::FamilyData Registry::family(const std::string& name, const std::string& help, Type type,
                                      std::vector<std::string> labelNames) {
    FamilyData f;
    f.name = name;
    f.help = help;
    f.type = type;
    f.labelNames = std::move(labelNames);
    return f;
}

size_t Registry::add(FamilyData f) {
    std::lock_guard lock(mu_);
    for (const auto& e : families_) {
        if (e->name == f.name) throw std::logic_error("metric registered twice: " + f.name);
    }
    families_.push_back(std::make_unique<FamilyData>(std::move(f)));
    return families_.size() - 1;
}

Family<Counter> Registry::counter(const std::string& name, const std::string& help,
                                  std::vector<std::string> labelNames) {
    return Family<Counter>(*this, add(family(name, help, Type::Counter, std::move(labelNames))));
}

Family<Gauge> Registry::gauge(const std::string& name, const std::string& help,
                              std::vector<std::string> labelNames) {
    return Family<Gauge>(*this, add(family(name, help, Type::Gauge, std::move(labelNames))));
}

Family<Histogram> Registry::histogram(const std::string& name, const std::string& help,
                                      std::vector<double> bounds,
                                      std::vector<std::string> labelNames) {
    FamilyData f = family(name, help, Type::Histogram, std::move(labelNames));
    f.bounds = std::move(bounds);
    return Family<Histogram>(*this, add(std::move(f)));
}

void Registry::gaugeFn(const std::string& name, const std::string& help,
                       std::function<double()> read) {
    FamilyData f = family(name, help, Type::Gauge, {});
    f.read = std::move(read);
    add(std::move(f));
}

void Registry::counterFn(const std::string& name, const std::string& help,
                         std::function<double()> read) {
    FamilyData f = family(name, help, Type::Counter, {});
    f.read = std::move(read);
    add(std::move(f));
}

template <typename Series>
Series& Family<Series>::with(const Labels& values) {
    std::lock_guard lock(r_.mu_);
    auto& f = *r_.families_[index_];
    if (values.size() != f.labelNames.size()) {
        throw std::logic_error(f.name + ": wrong number of label values");
    }
    if constexpr (std::is_same_v<Series, Counter>) {
        auto& slot = f.counters[values];
        if (!slot) slot = std::make_unique<Counter>();
        return *slot;
    } else if constexpr (std::is_same_v<Series, Gauge>) {
        auto& slot = f.gauges[values];
        if (!slot) slot = std::make_unique<Gauge>();
        return *slot;
    } else {
        auto& slot = f.histograms[values];
        if (!slot) slot = std::make_unique<Histogram>(&f.bounds);
        return *slot;
    }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void Registry::renderFamily(const FamilyData& f, std::string& out) const {
    out += "# HELP " + f.name + " " + escapeHelp(f.help) + "\n";
    out += "# TYPE " + f.name + " " + typeName(f.type) + "\n";
    if (f.read) {
        out += f.name + " " + formatValue(f.read()) + "\n";
        return;
    }
    for (const auto& [labels, c] : f.counters) {
        out += f.name + labelText(f.labelNames, labels) + " " +
               formatValue(static_cast<double>(c->value())) + "\n";
    }
    for (const auto& [labels, g] : f.gauges) {
        out += f.name + labelText(f.labelNames, labels) + " " + formatValue(g->value()) + "\n";
    }
    for (const auto& [labels, h] : f.histograms) {
        auto cum = h->cumulative();
        for (size_t i = 0; i < cum.size(); ++i) {
            std::string le = i < f.bounds.size() ? formatValue(f.bounds[i]) : "+Inf";
            out += f.name + "_bucket" + labelText(f.labelNames, labels, "le", le) + " " +
                   formatValue(static_cast<double>(cum[i])) + "\n";
        }
        out +=
            f.name + "_sum" + labelText(f.labelNames, labels) + " " + formatValue(h->sum()) + "\n";
        out += f.name + "_count" + labelText(f.labelNames, labels) + " " +
               formatValue(static_cast<double>(h->count())) + "\n";
    }
}

std::string Registry::render() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& f : families_) renderFamily(*f, out);
    return out;
}

}  // namespace danerelay::relay::metrics
