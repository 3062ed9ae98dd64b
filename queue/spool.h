// spool.h — the on-disk queue: accepted messages and their recipients' state.
//
// Layout under the spool directory:
//   tmp/         files being written; anything here at start-up is debris
//   msg/ID       one file per message: header line, envelope JSON, content;
//                written once, never modified
//   state/ID     per-recipient delivery state (JSON), replaced atomically;
//                absent means every recipient is still pending
//   quarantine/  damaged files set aside (by recovery, or when a load finds
//                them damaged), each with a .why note; never deleted
//   lock         flock()ed by the daemon: one writer per spool
//
// Durability contract: commit() returns success for a message only after its
// file was written, fsync'd, renamed into msg/ and msg/ itself was fsync'd.
// Any failure on that path unlinks what it wrote and reports an error; a
// message is never reported stored unless all of that succeeded. Several
// messages committed together share the directory fsync and the journal
// commit (group commit).
//
// Load failures come in three kinds (classifyLoadError): the message is gone,
// the system could not read it now (EIO, EMFILE, ENOMEM...: retry later), or
// its files are damaged (quarantine them). Damage is never deleted.
//
// Threads: every call blocks on disk I/O, so the daemon makes them from
// worker threads (the committer's, the two spool workers', danectl's status
// through the control verbs), never from the event loop. Any number of
// threads may call at once: after open() a Spool changes no state of its own
// (setCommitHook is for tests, before any thread starts), commit() writes
// only new IDs, and reads of an ID racing its removal see NotFound. The one
// rule is one writer per message: writeStatus(), remove() and quarantine() of
// the same ID must not overlap (they share tmp/ID.state and the rename). The
// scheduler guarantees it (one delivery or operator action per message at a
// time); the Spool enforces it: an overlapping write is refused with an
// Internal error naming the ID, and changes nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "queue/envelope.h"

namespace danerelay::queue {

struct StoredMessage {
    std::string id;
    Envelope envelope;
    std::vector<RecipientStatus> status;  // one per envelope recipient
    uint64_t contentSize = 0;
};

struct NewMessage {
    std::string id;  // from QueueIdGenerator
    Envelope envelope;
    std::string content;  // the message as it will be relayed (CRLF lines, unstuffed)
};

// Points in commit() where a test may stop the process (crash tests).
enum class CommitStage { TmpWritten, TmpSynced, Renamed, DirSynced };

// What a failed load(), loadContent() or verify() means for the message.
enum class LoadFailure {
    NotFound,   // no such message (delivered or removed meanwhile): Error kind Permanent
    Transient,  // an I/O or resource error (EIO, EMFILE, ENOMEM...): Temporary; retry later
    Damaged,    // the files are unreadable as a message (bad header, size,
                // checksum, JSON): Internal; quarantine() them
};
LoadFailure classifyLoadError(const Error& e);

struct RecoveryReport {
    // IDs, in arrival order: the readable messages, and those that a
    // transient error kept from being read (the scheduler retries them).
    std::vector<std::string> queued;
    struct Quarantined {
        std::string file;
        std::string reason;
    };
    std::vector<Quarantined> quarantined;
    size_t debrisRemoved = 0;  // tmp/ leftovers and orphaned state files
};

// Recovery's first step: what msg/ lists (sorted, arrival order; names not
// yet checked) and what was cleared.
struct RecoveryScan {
    std::vector<std::string> ids;
    size_t debrisRemoved = 0;
};

// Recovery's verdict on one listed ID.
struct RecoveryCheck {
    enum class Verdict {
        Queued,       // readable: status is its recipients' state
        Unreadable,   // a transient error (or a quarantine that failed): the
                      // scheduler retries it now; reason says why
        Gone,         // removed meanwhile (delivered, or an operator's delete)
        Quarantined,  // damaged, set aside in quarantine/: reason says why
    };
    Verdict verdict = Verdict::Gone;
    std::string reason;
    std::vector<RecipientStatus> status;
};

class Spool {
  public:
    enum class Mode {
        Writer,  // the daemon: creates the layout, takes the lock
        Reader,  // danectl's read-only view: creates nothing, takes no lock
    };
    static Result<std::unique_ptr<Spool>> open(const std::string& dir, Mode mode);
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    // Group commit: one Status per message, in order.
    std::vector<Status> commit(std::span<const NewMessage* const> batch);
    Status commitOne(const NewMessage& m);

    // Envelope, status and size of one message (not its content).
    Result<StoredMessage> load(const std::string& id) const;
    // The content, checked against the checksum in the header.
    Result<std::string> loadContent(const std::string& id) const;
    // The whole message file (envelope and content) checked against the
    // checksum in its header, read in pieces and not kept: what recovery
    // and the sweep use to find a flipped byte that load() cannot see.
    Status verify(const std::string& id) const;
    Status writeStatus(const std::string& id, const std::vector<RecipientStatus>& status);
    // durable=false after delivery (a crash may bring it back: at-least-once);
    // durable=true for an operator's delete, which must not come back.
    Status remove(const std::string& id, bool durable = false);

    // Start-up: clear tmp/, quarantine what is damaged (load() and verify()
    // say LoadFailure::Damaged), list the rest. Both steps below at once.
    RecoveryReport recover();
    // Recovery's first step, quick whatever the queue's size (directory
    // listings, no message read): clear tmp/, drop state files whose message
    // is gone (one whose message is in quarantine/, left by an interrupted
    // quarantine(), joins it there), list msg/. Before any commit: a commit's tmp/ file would be
    // taken for debris.
    RecoveryScan beginRecovery();
    // Recovery's second step for one listed ID, safe beside commits,
    // deliveries and other checks (the daemon runs it on workers while it
    // serves): read and verify the message; set it aside if it is damaged.
    RecoveryCheck recoverOne(const std::string& id);
    // Set msg/ID and state/ID aside in quarantine/ with ID.why holding the
    // reason, fsync'd. The one way damage leaves the queue (recovery and the
    // daemon both use it); an error leaves the files where they were.
    Status quarantine(const std::string& id, const std::string& reason);
    // How many files quarantine/ holds (counted by their .why notes).
    size_t quarantinedCount() const;
    // Every message ID in msg/, sorted (arrival order). No validation.
    std::vector<std::string> listIds() const;

    const std::string& dir() const { return dir_; }

    // Test hook, called at each stage of commit().
    void setCommitHook(std::function<void(CommitStage)> hook) { hook_ = std::move(hook); }

  private:
    explicit Spool(std::string dir) : dir_(std::move(dir)) {}
    void stage(CommitStage s) {
        if (hook_) hook_(s);
    }

    // One writer per message (see the thread contract above): a write holds
    // a claim on its ID for its duration.
    class WriteClaim;

    std::string dir_;
    UniqueFd lockFd_;
    UniqueFd msgDirFd_;
    UniqueFd stateDirFd_;
    std::function<void(CommitStage)> hook_;
    std::mutex writingMu_;
    std::set<std::string, std::less<>> writing_;
};

// Exposed for tests: the on-disk encoding of a message file.
std::string encodeMessageFile(const Envelope& env, std::string_view content);

}  // namespace danerelay::queue
