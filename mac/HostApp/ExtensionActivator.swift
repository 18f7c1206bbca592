// Activation and deactivation of the embedded dext through the SystemExtensions framework.
//
// The app needs the entitlement com.apple.developer.system-extension.install
// (entitlements/DkRaidAdmin.entitlements) and, outside developer mode
// (`systemextensionsctl developer on`), must run from /Applications.

import Foundation
import SystemExtensions
import os.log

private let log = Logger(subsystem: "org.dkraid", category: "activation")

final class ExtensionActivator: NSObject, ObservableObject, OSSystemExtensionRequestDelegate {
    /// The bundle identifier of the dext embedded in this app, read from the bundle itself so
    /// that it always names what Xcode copied in (PRODUCT_BUNDLE_IDENTIFIER of DkRaidDriver).
    let extensionIdentifier: String?

    @Published private(set) var status = "Not requested yet."
    @Published private(set) var busy = false
    @Published private(set) var failed = false

    override init() {
        extensionIdentifier = ExtensionActivator.embeddedExtensionIdentifier()
        super.init()
        if extensionIdentifier == nil {
            status = "No .dext in \(Bundle.main.bundleURL.path)/Contents/Library/SystemExtensions: "
                + "the Embed System Extensions phase did not run."
            failed = true
        }
    }

    /// The identifier of the first `.dext` in Contents/Library/SystemExtensions.
    static func embeddedExtensionIdentifier() -> String? {
        let folder = Bundle.main.bundleURL
            .appendingPathComponent("Contents/Library/SystemExtensions", isDirectory: true)
        let contents = (try? FileManager.default.contentsOfDirectory(
            at: folder, includingPropertiesForKeys: nil)) ?? []
        return contents
            .filter { $0.pathExtension == "dext" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
            .compactMap { Bundle(url: $0)?.bundleIdentifier }
            .first
    }

    func activate() {
        guard let identifier = extensionIdentifier else { return }
        submit(OSSystemExtensionRequest.activationRequest(
            forExtensionWithIdentifier: identifier, queue: .main),
               what: "activation of \(identifier)")
    }

    func deactivate() {
        guard let identifier = extensionIdentifier else { return }
        submit(OSSystemExtensionRequest.deactivationRequest(
            forExtensionWithIdentifier: identifier, queue: .main),
               what: "deactivation of \(identifier)")
    }

    private func submit(_ request: OSSystemExtensionRequest, what: String) {
        request.delegate = self
        busy = true
        failed = false
        status = "Requested \(what)…"
        log.info("submitting \(what, privacy: .public)")
        OSSystemExtensionManager.shared.submitRequest(request)
    }

    // MARK: OSSystemExtensionRequestDelegate (called on the request's queue, .main)

    func request(_ request: OSSystemExtensionRequest,
                 actionForReplacingExtension existing: OSSystemExtensionProperties,
                 withExtension ext: OSSystemExtensionProperties) -> OSSystemExtensionRequest.ReplacementAction {
        // An installed copy (older, newer or the same version rebuilt) is replaced by the one
        // in this app: during bring-up every build must reach the machine.
        log.info("replacing \(existing.bundleIdentifier, privacy: .public) \(existing.bundleShortVersion, privacy: .public) (\(existing.bundleVersion, privacy: .public)) with \(ext.bundleShortVersion, privacy: .public) (\(ext.bundleVersion, privacy: .public))")
        status = "Replacing version \(existing.bundleShortVersion) (\(existing.bundleVersion)) "
            + "with \(ext.bundleShortVersion) (\(ext.bundleVersion))…"
        return .replace
    }

    func requestNeedsUserApproval(_ request: OSSystemExtensionRequest) {
        log.info("waiting for the user's approval of \(request.identifier, privacy: .public)")
        status = "Waiting for approval: open System Settings › Privacy & Security "
            + "(System Preferences › Security & Privacy on macOS 11–12) and allow the "
            + "\"DkRaid\" system software."
    }

    func request(_ request: OSSystemExtensionRequest,
                 didFinishWithResult result: OSSystemExtensionRequest.Result) {
        busy = false
        switch result {
        case .completed:
            log.info("\(request.identifier, privacy: .public): request completed")
            status = "Done: \(request.identifier). Check with `systemextensionsctl list`."
        case .willCompleteAfterReboot:
            log.info("\(request.identifier, privacy: .public): completes after a reboot")
            status = "Done after a restart: \(request.identifier) changes when the Mac restarts."
        @unknown default:
            log.error("\(request.identifier, privacy: .public): unknown result \(result.rawValue)")
            status = "Finished with an unknown result (\(result.rawValue))."
        }
    }

    func request(_ request: OSSystemExtensionRequest, didFailWithError error: Error) {
        busy = false
        failed = true
        let described = ExtensionActivator.describe(error)
        log.error("\(request.identifier, privacy: .public) failed: \(described, privacy: .public)")
        status = "Failed: \(described)"
    }

    /// A sentence for each OSSystemExtensionError a bring-up engineer meets.
    static func describe(_ error: Error) -> String {
        guard let error = error as? OSSystemExtensionError else {
            return error.localizedDescription
        }
        let hint: String
        switch error.code {
        case .missingEntitlement:
            hint = "the app lacks com.apple.developer.system-extension.install"
        case .unsupportedParentBundleLocation:
            hint = "move DkRaid.app to /Applications (or `systemextensionsctl developer on`)"
        case .extensionNotFound:
            hint = "no dext with that identifier in Contents/Library/SystemExtensions"
        case .extensionMissingIdentifier:
            hint = "the dext's Info.plist has no CFBundleIdentifier"
        case .duplicateExtensionIdentifer:
            hint = "two embedded extensions share an identifier"
        case .unknownExtensionCategory:
            hint = "the dext's Info.plist does not say what kind of extension it is"
        case .codeSignatureInvalid:
            hint = "the dext's signature or its entitlements are not valid for this Mac "
                + "(team, provisioning profile, DriverKit entitlements)"
        case .validationFailed:
            hint = "the dext failed validation (Info.plist personality, entitlements, signature)"
        case .forbiddenBySystemPolicy:
            hint = "a configuration profile or system policy forbids it"
        case .requestCanceled:
            hint = "the request was canceled"
        case .requestSuperseded:
            hint = "a newer request for the same extension replaced this one"
        case .authorizationRequired:
            hint = "the user has not approved it yet"
        default:
            hint = "error \(error.code.rawValue)"
        }
        return "\(error.localizedDescription) (\(hint))"
    }
}
