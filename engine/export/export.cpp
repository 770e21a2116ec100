#include "engine/export/export.h"

#include "engine/common/error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <stdexcept>
#include <nlohmann/json.hpp>
#include <tuple>

namespace hl::exporter {

namespace {

// ---- A format-neutral table, rendered three ways -------------------------------------------------

struct Value {
  enum Kind { Text, Number, Stat, Missing, Blank } kind = Blank;
  std::string text;  // Text
  double mean = 0;   // Number, Stat
  double std = 0;    // Stat
  bool has_std = false;
};

struct Column {
  std::string title;        // Markdown / CSV header (CSV adds _mean/_std to Stat columns)
  std::string latex_title;  // raw LaTeX (already escaped)
  std::string csv_name;
  bool numeric = false;  // right-aligned
  bool stat = false;     // mean ± std values (two CSV columns)
};

struct Table {
  std::string caption;  // Markdown: a line above the table; LaTeX: a comment; CSV: omitted
  std::vector<Column> columns;
  std::vector<std::vector<Value>> rows;
};

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", std::clamp(decimals, 0, 17), v);
  std::string s = buf;
  // "-0.000" reads as a sign that is not there.
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

std::string escape_latex(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\textbackslash{}";
        break;
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        out += '\\';
        out += c;
        break;
      case '~':
        out += "\\textasciitilde{}";
        break;
      case '^':
        out += "\\textasciicircum{}";
        break;
      case '\n':
      case '\r':
        out += ' ';
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string escape_markdown(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out;
}

std::string quote_csv(const std::string& s) {  // RFC 4180
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

size_t display_width(const std::string& s) {  // code points: "–" and "±" are one column
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

// A value as Markdown or LaTeX text (already escaped). LaTeX gets a real minus sign.
std::string cell_text(const Value& v, Format f, int decimals) {
  const bool latex = f == Format::Latex;
  auto num = [&](double x) {
    std::string s = fixed(x, decimals);
    return latex && s[0] == '-' ? "$-$" + s.substr(1) : s;
  };
  switch (v.kind) {
    case Value::Text:
      return latex ? escape_latex(v.text) : escape_markdown(v.text);
    case Value::Number:
      return num(v.mean);
    case Value::Stat:
      if (!v.has_std) return num(v.mean);
      return num(v.mean) + (latex ? " $\\pm$ " : " ± ") + num(v.std);
    case Value::Missing:
      return latex ? "--" : "–";
    case Value::Blank:
      return "";
  }
  return "";
}

std::string render_csv(const Table& t, int decimals) {
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) out += (i ? "," : "") + quote_csv(cells[i]);
    out += "\n";
  };
  std::vector<std::string> head;
  for (const Column& c : t.columns) {
    if (c.stat) {
      head.push_back(c.csv_name + "_mean");
      head.push_back(c.csv_name + "_std");
    } else {
      head.push_back(c.csv_name);
    }
  }
  line(head);
  for (const auto& row : t.rows) {
    std::vector<std::string> cells;
    for (size_t i = 0; i < row.size(); ++i) {
      const Value& v = row[i];
      const bool numbered = v.kind == Value::Number || v.kind == Value::Stat;
      cells.push_back(v.kind == Value::Text ? v.text : numbered ? fixed(v.mean, decimals) : "");
      if (t.columns[i].stat) cells.push_back(v.kind == Value::Stat && v.has_std ? fixed(v.std, decimals) : "");
    }
    line(cells);
  }
  return out;
}

std::string render_markdown(const Table& t, int decimals) {
  const size_t n = t.columns.size();
  std::vector<std::vector<std::string>> grid;
  std::vector<std::string> head;
  for (const Column& c : t.columns) head.push_back(escape_markdown(c.title));
  grid.push_back(head);
  for (const auto& row : t.rows) {
    std::vector<std::string> cells;
    for (const Value& v : row) cells.push_back(cell_text(v, Format::Markdown, decimals));
    grid.push_back(cells);
  }
  std::vector<size_t> width(n, 3);
  for (const auto& r : grid)
    for (size_t i = 0; i < n; ++i) width[i] = std::max(width[i], display_width(r[i]));
  auto pad = [&](const std::string& s, size_t i) {
    std::string fill(width[i] - display_width(s), ' ');
    return t.columns[i].numeric ? fill + s : s + fill;
  };
  std::string out;
  if (!t.caption.empty()) out += escape_markdown(t.caption) + "\n\n";
  auto line = [&](const std::vector<std::string>& cells) {
    out += "|";
    for (size_t i = 0; i < n; ++i) out += " " + pad(cells[i], i) + " |";
    out += "\n";
  };
  line(grid[0]);
  out += "|";
  for (size_t i = 0; i < n; ++i)
    out += " " + (t.columns[i].numeric ? std::string(width[i] - 1, '-') + ":" : std::string(width[i], '-')) + " |";
  out += "\n";
  for (size_t r = 1; r < grid.size(); ++r) line(grid[r]);
  return out;
}

std::string render_latex(const Table& t, int decimals) {
  std::string out;
  if (!t.caption.empty()) {
    std::string c = t.caption;
    std::replace(c.begin(), c.end(), '\n', ' ');
    out += "% " + c + "\n";
  }
  out += "\\begin{tabular}{";
  for (const Column& c : t.columns) out += c.numeric ? 'r' : 'l';
  out += "}\n\\toprule\n";
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) out += (i ? " & " : "") + cells[i];
    out += " \\\\\n";
  };
  std::vector<std::string> head;
  for (const Column& c : t.columns) head.push_back(c.latex_title);
  line(head);
  out += "\\midrule\n";
  for (const auto& row : t.rows) {
    std::vector<std::string> cells;
    for (const Value& v : row) cells.push_back(cell_text(v, Format::Latex, decimals));
    line(cells);
  }
  out += "\\bottomrule\n\\end{tabular}\n";
  return out;
}

std::string render(const Table& t, const TableOptions& opt) {
  switch (opt.format) {
    case Format::Csv:
      return render_csv(t, opt.decimals);
    case Format::Markdown:
      return render_markdown(t, opt.decimals);
    case Format::Latex:
      return render_latex(t, opt.decimals);
  }
  return "";
}

Column text_column(const std::string& title, const std::string& csv) {
  return {title, escape_latex(title), csv, false, false};
}
Column number_column(const std::string& title, const std::string& latex, const std::string& csv, bool stat = false) {
  return {title, latex, csv, true, stat};
}

Value text(const std::string& s) {
  Value v;
  v.kind = Value::Text;
  v.text = s;
  return v;
}
Value number(double x) {
  Value v;
  v.kind = std::isfinite(x) ? Value::Number : Value::Blank;
  v.mean = x;
  return v;
}

// mean ± sample std (n - 1) of the finite values; Missing when there are none.
Value stat(const std::vector<double>& xs) {
  Value v;
  if (xs.empty()) {
    v.kind = Value::Missing;
    return v;
  }
  v.kind = Value::Stat;
  double sum = 0;
  for (double x : xs) sum += x;
  v.mean = sum / static_cast<double>(xs.size());
  if (xs.size() >= 2) {
    double ss = 0;
    for (double x : xs) ss += (x - v.mean) * (x - v.mean);
    v.std = std::sqrt(ss / static_cast<double>(xs.size() - 1));
    v.has_std = true;
  }
  return v;
}

// The summary_json keys shown, in column order.
struct MetricKey {
  const char* key;
  const char* title;
  const char* latex;
};
const MetricKey kMetrics[] = {
    {"final_avg_acc", "Final acc.", "Final acc."},
    {"forgetting", "Forgetting", "Forgetting"},
    {"bwt", "BWT", "BWT"},
    {"macro_f1", "Macro-F1", "Macro-F1"},
    {"task_il_acc", "Task-IL acc.", "Task-IL acc."},
};

}  // namespace

std::string results_table(const std::vector<hl::store::RunRecord>& runs, const TableOptions& opt) {
  // Group by config_hash; an empty hash never groups (each such run is its own row).
  std::map<std::string, std::vector<const hl::store::RunRecord*>> groups;
  for (const auto& r : runs) {
    std::string key = r.config_hash.empty() ? "\x01run:" + std::to_string(r.id) : r.config_hash;
    groups[key].push_back(&r);
  }
  std::vector<std::pair<std::string, std::vector<const hl::store::RunRecord*>>> sorted(groups.begin(), groups.end());
  auto sort_key = [](const std::pair<std::string, std::vector<const hl::store::RunRecord*>>& g) {
    const auto* r = g.second.front();
    return std::tie(r->dataset, r->name, r->strategy, r->head, r->protocol, g.first);
  };
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](const auto& a, const auto& b) { return sort_key(a) < sort_key(b); });

  Table t;
  t.columns = {text_column("Dataset", "dataset"),   text_column("Model", "model"),
               text_column("Strategy", "strategy"), text_column("Head", "head"),
               text_column("Protocol", "protocol"), number_column("n", "$n$", "n")};
  const bool labelled = !opt.config_labels.empty();
  if (labelled) t.columns.insert(t.columns.begin() + 2, text_column("Config", "config"));
  for (const MetricKey& m : kMetrics) t.columns.push_back(number_column(m.title, m.latex, m.key, true));
  t.columns.push_back(number_column("Params", "Params", "params"));
  if (opt.train_time) t.columns.push_back(number_column("Train s", "Train s", "train_seconds", true));

  for (const auto& [key, members] : sorted) {
    (void)key;
    const auto& first = *members.front();
    std::vector<Value> row = {text(first.dataset), text(first.name),     text(first.strategy),
                              text(first.head),    text(first.protocol), text(std::to_string(members.size()))};
    if (labelled) {
      const auto it = opt.config_labels.find(first.config_hash);
      row.insert(row.begin() + 2, text(it == opt.config_labels.end() ? std::string() : it->second));
    }
    std::vector<nlohmann::json> summaries;
    for (const auto* r : members) summaries.push_back(nlohmann::json::parse(r->summary_json, nullptr, false));
    for (const MetricKey& m : kMetrics) {
      std::vector<double> xs;
      for (const auto& s : summaries)
        if (s.is_object() && s.contains(m.key) && s[m.key].is_number()) {
          double x = s[m.key].get<double>();
          if (std::isfinite(x)) xs.push_back(x);
        }
      row.push_back(stat(xs));
    }
    row.push_back(text(std::to_string(first.params)));
    if (opt.train_time) {
      std::vector<double> xs;
      for (const auto& s : summaries)
        if (s.is_object() && s.contains("train_seconds") && s["train_seconds"].is_number())
          xs.push_back(s["train_seconds"].get<double>());
      row.push_back(stat(xs));
    }
    t.rows.push_back(std::move(row));
  }
  return render(t, opt);
}

std::string mean_std_markdown(const std::vector<double>& xs, int decimals) {
  return cell_text(stat(xs), Format::Markdown, decimals);
}

hl::metrics::Matrix accuracy_matrix(const std::vector<hl::store::AccuracyCell>& cells, bool task_il) {
  int64_t T = 0;  // RunStore::accuracy keeps indices below kMaxTasks; 64 bits so that no input overflows
  for (const auto& c : cells) T = std::max(T, int64_t(std::max(c.after_task, c.task)) + 1);
  if (T > hl::store::kMaxTasks)
    throw std::length_error("accuracy matrix of " + std::to_string(T) + " tasks (at most " +
                            std::to_string(hl::store::kMaxTasks) + ")");
  hl::metrics::Matrix R(static_cast<size_t>(T), std::vector<double>(static_cast<size_t>(T), hl::metrics::nan()));
  for (const auto& c : cells)
    if (c.after_task >= 0 && c.task >= 0) R[c.after_task][c.task] = task_il ? c.task_il_acc : c.acc;
  return R;
}

std::string accuracy_matrix_table(const hl::store::RunRecord& run, const std::vector<hl::store::AccuracyCell>& cells,
                                  const TableOptions& opt) {
  const hl::metrics::Matrix R = accuracy_matrix(cells, opt.task_il);
  const hl::metrics::Summary s = hl::metrics::summarize(R);
  const size_t T = R.size();

  Table t;
  t.caption = std::string(opt.task_il ? "Task-IL" : "Class-IL") + " accuracy R[i][j] of run " + std::to_string(run.id) +
              " (" + run.name + ", " + run.dataset + ", " + run.strategy + ", seed " + std::to_string(run.seed) +
              "); A_i = mean of row i up to the diagonal";
  t.columns.push_back(number_column("After task", "After task", "after_task"));
  for (size_t j = 0; j < T; ++j) {
    const std::string k = std::to_string(j + 1);
    t.columns.push_back(number_column("Task " + k, "Task " + k, "task_" + k));
  }
  t.columns.push_back(number_column("A_i", "$A_i$", "avg_acc"));
  for (size_t i = 0; i < T; ++i) {
    std::vector<Value> row = {text(std::to_string(i + 1))};
    for (size_t j = 0; j < T; ++j) row.push_back(j <= i ? number(R[i][j]) : Value{});
    row.push_back(i < s.avg_acc.size() ? number(s.avg_acc[i]) : Value{});
    t.rows.push_back(std::move(row));
  }
  return render(t, opt);
}

std::vector<int64_t> parse_run_ids(const std::string& s, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (part.empty()) continue;
    auto dash = part.find('-');
    try {
      if (dash != std::string::npos && dash > 0) {
        int64_t a = std::stoll(part.substr(0, dash)), b = std::stoll(part.substr(dash + 1));
        if (b < a || b - a > 1000000) throw std::out_of_range("range");
        for (int64_t i = a; i <= b; ++i) out.push_back(i);
      } else {
        size_t used = 0;
        out.push_back(std::stoll(part, &used));
        if (used != part.size()) throw std::invalid_argument("trailing");
      }
    } catch (...) {
      throw hl::SpecError(what + ": '" + part + "' is not a run id or range (e.g. 3,5,7-9)");
    }
  }
  return out;
}

}  // namespace hl::exporter
