import Foundation
import Libvirt
import Testing

/// libvirt prints every error to stderr unless an error handler is installed.
@Suite("Error printing")
struct StderrTests {
    @Test func failingCallsPrintNothingToStandardError() throws {
        Libvirt.silenceDefaultErrorPrinting()
        let node = try NodeFile()
        let connection = try node.connect()
        let marker = "stderr-probe-\(UUID().uuidString)"

        let captured = try captureStandardError {
            // The quoted XML line puts the marker into libvirt's message.
            let error = captureError { () throws(LibvirtError) in
                _ = try connection.define(xml: "<domain type='test'><name>\(marker)</name>")
            }
            #expect(error?.message?.contains(marker) == true)
            // The capture works: text written to fd 2 meanwhile is seen.
            FileHandle.standardError.write(Data("control-\(marker)\n".utf8))
        }
        #expect(captured.contains("control-\(marker)"))
        #expect(!captured.contains("<name>\(marker)</name>"), "libvirt printed: \(captured)")
    }
}

/// Runs `body` with file descriptor 2 redirected into a pipe and returns what was written to it.
func captureStandardError(_ body: () throws -> Void) throws -> String {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else {
        throw POSIXError(.EIO)
    }
    let saved = dup(STDERR_FILENO)
    fflush(nil)
    dup2(fds[1], STDERR_FILENO)
    close(fds[1])
    var thrown: Error?
    do {
        try body()
    } catch {
        thrown = error
    }
    fflush(nil)
    dup2(saved, STDERR_FILENO)
    close(saved)
    let data = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true).readDataToEndOfFile()
    if let thrown {
        throw thrown
    }
    return String(decoding: data, as: UTF8.self)
}
