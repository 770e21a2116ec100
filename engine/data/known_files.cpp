#include "engine/data/known_files.h"

namespace hl::data {
namespace {
const std::string kClinc =
    "https://raw.githubusercontent.com/clinc/oos-eval/828f8093932c8fe6ca7936c3d2e52903b1c523de/"
    "data/";
const std::string kBanking =
    "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/"
    "57ec275d8078af65b7731c2a98be812d844a6d6b/banking_data/";
const std::string kOLoRA =
    "https://raw.githubusercontent.com/cmnfriend/O-LoRA/07117e1fc4a5f5ad9308a815a42cee8f46502dc8/"
    "CL_Benchmark/TC/dbpedia/";
const std::string kKaggleSample =
    "https://raw.githubusercontent.com/pradeepbnaik/textclassification_kerasSequential/"
    "a7c0058ba7e0c886f32fa738cfed7a4d8984cf1d/";
const std::string kKlda =
    "https://raw.githubusercontent.com/SalehMomeni/KLDA/ee5f05b283b9a9445c0906eb8826244d359f0ec8/"
    "data/";
}  // namespace

const std::vector<KnownFile>& known_files() {
  // sha256 values copied from shared/datasets/SHA256SUMS.
  static const std::vector<KnownFile> files = {
      {"clinc150/data_full.json",
       "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
       kClinc + "data_full.json",
       {"clinc150"}},
      {"clinc150/data_small.json",
       "050e17476e6b4fa88f8518edaf09921c8f5e3a86dc8b63615361102a20b2ac01",
       kClinc + "data_small.json",
       {}},
      {"clinc150/data_imbalanced.json",
       "4886730b20c51eece26aa392ecae2717bfe9908680419e96255351c6148eb4cc",
       kClinc + "data_imbalanced.json",
       {}},
      {"clinc150/data_oos_plus.json",
       "bfcca9ae515623541dc1983c94c4ed7cae9d26b42ae47d74b972e51bb6f7a21f",
       kClinc + "data_oos_plus.json",
       {}},
      {"clinc150/domains.json",
       "b947b579d3b8e74b06f93b01083d8efaff2888b43a3e362533bd88a6e1211b3a",
       kClinc + "domains.json",
       {}},
      {"banking77/train.csv",
       "b06e26ac675513959a63135f11b94ea7786ed02da65db93a5650d8838cbc664b",
       kBanking + "train.csv",
       {"banking77"}},
      {"banking77/test.csv",
       "d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d",
       kBanking + "test.csv",
       {"banking77"}},
      {"banking77/categories.json",
       "53261da888122daf2d120d925458631d9619e15d82e56052e7a42e535ce32b63",
       kBanking + "categories.json",
       {}},
      {"dbpedia14/olora_test.json",
       "971c1a298668385042ce02b67444e1d45773ce0b8b22abbbc39a2592bbe7c255",
       kOLoRA + "test.json",
       {"dbpedia14"}},
      {"dbpedia14/olora_labels.json",
       "240b2344560e4d0736888d74332f78932525343a053149dfdc131ec1fc604a61",
       kOLoRA + "labels.json",
       {"dbpedia14"}},
      // derived from the two O-LoRA files (fetch rebuilds them, see fetch.cpp)
      {"dbpedia14/test_sample_7600.csv",
       "5148f6c89cd5824d5c1d8bc34621db1850c7da3e05a8dbd70ddfb17a56f4e624",
       "",
       {"dbpedia14"}},
      {"dbpedia14/classes.txt", "3390a11cf615554211a10dfcc4f807d25bc0293cbb6e62e913c16c2281e7a02c", "", {"dbpedia14"}},
      {"dbpedia_hierarchical/DBPEDIA_train_first5000_noheader.csv",
       "9d3270a03b0f8b2da622d246456bd0d8050356152faf86f085ad83c50b300360",
       kKaggleSample + "DBPEDIA_train.csv",
       {}},
      {"klda_inca_subsets/clinc_train.csv",
       "3f48327035d65c212b7ea7add693c6aeae0ebe3d0bc48e00ea8fadf1c4d09c88",
       kKlda + "clinc_train.csv",
       {}},
      {"klda_inca_subsets/clinc_test.csv",
       "039d4307bff41c2b6e0c26ea4574bf19d19b1e95dbbdf6a893e0f461e8da2f2b",
       kKlda + "clinc_test.csv",
       {}},
      {"klda_inca_subsets/banking_train.csv",
       "b9dae5166535cc6016f1400e972b9e46ab5819aa94c572d29740969ed3c7034a",
       kKlda + "banking_train.csv",
       {}},
      {"klda_inca_subsets/banking_test.csv",
       "d2500ddaccc3674c390c8f8cf93d1fc5b78cc8aa8c7b986aa7a950b4f7ff9a50",
       kKlda + "banking_test.csv",
       {}},
      {"klda_inca_subsets/banking_label_id_to_name.json",
       "9015139f7d4247d8b2d91411ee03bc66fdacf27b8a715d6f03af23d08760c8b4",
       "",
       {}},
      {"klda_inca_subsets/dbpedia_train.csv",
       "586aea674428bdd107c5c634ee13c52aa383fabc3b484b7d86161910956d1214",
       kKlda + "dbpedia_train.csv",
       {"dbpedia70"}},
      {"klda_inca_subsets/dbpedia_test.csv",
       "ae7e8ba7ac6a5d7e5b59416800f0cda42e8e9ba6bbefc5b1874359b5afa09fd4",
       kKlda + "dbpedia_test.csv",
       {"dbpedia70"}},
      // derived task definitions: only from a mirror or `data import`
      {"cl_splits/vag_clinc150_tasks.json",
       "81b2a61e9dc65ed0b0efc4e1108a33df142411067fb91f2588919f49af5d17a9",
       "",
       {"clinc150"}},
      {"cl_splits/vag_banking77_tasks.json",
       "e7586df4477f45419695b6b3817ef02bc0e2736cdf78f7269a13ce5e40d80acf",
       "",
       {"banking77"}},
      {"cl_splits/klda_class_orders.json",
       "b67667843689af5e2b2b69c8891299a1406eb65414ca941eec3110a66928513d",
       "",
       {"dbpedia70"}},
  };
  return files;
}

const KnownFile* find_known_file(const std::string& relative_path) {
  for (const auto& f : known_files())
    if (f.path == relative_path) return &f;
  return nullptr;
}

}  // namespace hl::data
