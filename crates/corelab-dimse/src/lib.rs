//! corelab's DICOM upper-layer edge: associations, C-ECHO and C-STORE.
//!
//! The called AE title names the trial and the calling AE title the site (both from the charter);
//! an unknown or unqualified caller is rejected at association with the reason logged.
//! Every accepted socket gets `TCP_NODELAY`: with Nagle on, a peer's delayed ACK stalls each
//! small PDU by about 40 ms (measured against dcmtk 3.6.7). dicom-ul writes each PDU with one
//! `write_all`, so a PDU never leaves in two segments.
//!
//! A C-STORE's data PDVs are not collected in memory: they flow through a bounded channel into the
//! ingest pipeline, which de-identifies them on the way to disk; the response goes out only after
//! the instance is durable and indexed.

mod pdata;
mod routing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use corelab_app::App;
use corelab_app::ingest::{ChannelReader, IngestError, IngestOutcome, IngestSetup, IngestTarget, Source};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::ServerAssociationOptions;
use dicom_ul::association::server::DefaultNegotiation;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use pdata::Received;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use routing::{Destination, Routing};

/// Settings of the DIMSE service.
#[derive(Debug, Clone)]
pub struct DimseSettings {
    /// The AE title corelab answers to for verification (trials have their own, in the charter).
    pub ae_title: String,
    /// Largest PDU corelab accepts (the peer may offer smaller ones).
    pub max_pdu_length: u32,
    /// An association idle for this long is aborted.
    pub idle_timeout: Duration,
    /// Most associations served at once; more wait in the kernel's accept queue.
    pub max_associations: usize,
    /// How often the AE routing snapshot is reloaded from the database.
    pub routing_refresh: Duration,
}

impl Default for DimseSettings {
    fn default() -> Self {
        Self {
            ae_title: "CORELAB".into(),
            max_pdu_length: 131_072,
            idle_timeout: Duration::from_secs(120),
            max_associations: 32,
            routing_refresh: Duration::from_secs(5),
        }
    }
}

/// DIMSE command field values and statuses (PS3.7).
mod command {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
    /// Command Data Set Type value meaning "no data set follows".
    pub const NO_DATA_SET: u16 = 0x0101;
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources (the sender should retry later).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: cannot understand (unreadable or refused data).
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Error (Cxxx "cannot understand", corelab's subcode): a different object is already stored
    /// under this SOP Instance UID. PS3.7's 0111 is an N-service status that C-STORE SCUs such as
    /// dcmtk do not recognise, so the C-STORE error range is used.
    pub const DUPLICATE_SOP_INSTANCE: u16 = 0xC111;
}

/// Errors of the DIMSE edge.
#[derive(Debug, thiserror::Error)]
pub enum DimseError {
    #[error("association failed: {0}")]
    Ul(#[from] dicom_ul::association::Error),
    #[error("malformed DIMSE command: {0}")]
    Command(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

type Options = ServerAssociationOptions<'static, Routing, DefaultNegotiation>;

/// Serves DIMSE on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    settings: DimseSettings,
    app: App,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let routing = Routing::new(&settings.ae_title);
    if let Err(e) = routing.refresh(&app).await {
        tracing::warn!(error = %e, "could not load AE routing; retrying in the background");
    }
    {
        let (routing, app, every) = (routing.clone(), app.clone(), settings.routing_refresh);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                if let Err(e) = routing.refresh(&app).await {
                    tracing::warn!(error = %e, "could not refresh AE routing");
                }
            }
        });
    }
    let options: Arc<Options> = Arc::new(
        ServerAssociationOptions::new()
            .ae_access_control(routing.clone())
            .ae_title(settings.ae_title.clone())
            // Every storage SOP class; transfer syntaxes as proposed, stored as received.
            .promiscuous(true)
            .with_abstract_syntax(uids::VERIFICATION)
            .max_pdu_length(settings.max_pdu_length)
            .read_timeout(settings.idle_timeout),
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.max_associations.max(1)));
    loop {
        let (socket, peer) = tokio::select! {
            r = listener.accept() => r?,
            _ = shutdown.changed() => return Ok(()),
        };
        let Ok(permit) = permits.clone().acquire_owned().await else { return Ok(()) };
        let (options, app, routing, settings) = (options.clone(), app.clone(), routing.clone(), settings.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = socket.set_nodelay(true) {
                tracing::warn!(%peer, error = %e, "could not set TCP_NODELAY");
            }
            if let Err(e) = handle_association(socket, peer, &options, &settings, &routing, &app).await {
                tracing::warn!(%peer, error = %e, "association ended with an error");
            }
        });
    }
}

/// The C-STORE in progress on an association: its data flows to the ingest task.
struct StoreInProgress {
    message_id: u16,
    sop_class: String,
    sop_instance: String,
    pc_id: u8,
    data: Option<mpsc::Sender<bytes::Bytes>>,
    task: tokio::task::JoinHandle<Result<IngestOutcome, IngestError>>,
}

async fn handle_association(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    options: &Options,
    settings: &DimseSettings,
    routing: &Routing,
    app: &App,
) -> Result<(), DimseError> {
    let mut assoc = match options.establish_async(socket).await {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(%peer, reason = %e, "association not established");
            return Ok(());
        }
    };
    let calling = dicom_ul::association::Association::peer_ae_title(&assoc).to_string();
    let called = assoc.called_ae_title().to_string();
    let destination = routing.decide(&calling, &called).ok();
    tracing::info!(%peer, calling_ae = %calling, called_ae = %called, "association accepted");
    metrics::counter!("corelab_dimse_associations_total").increment(1);
    let pcs: Vec<(u8, String)> = assoc
        .presentation_contexts()
        .iter()
        .map(|pc| (pc.id, pc.transfer_syntax.trim_end_matches('\0').to_string()))
        .collect();
    // What this side offered; dicom-ul's own check is the same.
    let max_pdu_length = assoc.acceptor_max_pdu_length();
    let idle_timeout = settings.idle_timeout;
    let mut setup: Option<IngestSetup> = None;
    let mut current: Option<StoreInProgress> = None;
    loop {
        // Acknowledge every segment at once: an SCU that leaves Nagle on (most modalities and PACS)
        // holds back each PDU's body until its header is acknowledged, and a delayed ACK costs
        // ~40 ms per instance. Linux drops quick-ack mode on its own, so it is renewed per PDU.
        #[cfg(target_os = "linux")]
        let _ = assoc.inner_stream().set_quickack(true);
        let pdu = pdata::receive(&mut assoc, max_pdu_length, idle_timeout).await?;
        match pdu {
            Received::PData(pdvs) => {
                for pdv in pdvs {
                    if pdv.command {
                        let cmd = read_command(&pdv.data)?;
                        match cmd_u16(&cmd, tags::COMMAND_FIELD)? {
                            command::C_ECHO_RQ => {
                                let rsp = echo_response(&cmd)?;
                                send_command(&mut assoc, pdv.presentation_context_id, rsp).await?;
                                metrics::counter!("corelab_dimse_echo_total").increment(1);
                            }
                            command::C_STORE_RQ => {
                                let ts = pcs
                                    .iter()
                                    .find(|(id, _)| *id == pdv.presentation_context_id)
                                    .map(|(_, ts)| ts.clone())
                                    .unwrap_or_else(|| uids::IMPLICIT_VR_LITTLE_ENDIAN.to_string());
                                current = Some(
                                    begin_store(
                                        app,
                                        &destination,
                                        &mut setup,
                                        &calling,
                                        &cmd,
                                        pdv.presentation_context_id,
                                        &ts,
                                    )
                                    .await?,
                                );
                            }
                            other => {
                                tracing::warn!(%peer, command = format!("{other:#06x}"), "unsupported DIMSE command; aborting");
                                assoc.abort().await?;
                                return Ok(());
                            }
                        }
                    } else {
                        let Some(store) = current.as_mut() else {
                            tracing::warn!(%peer, "data without a C-STORE command; aborting");
                            assoc.abort().await?;
                            return Ok(());
                        };
                        if let Some(tx) = &store.data {
                            // A closed pipe means ingest already gave up on this instance;
                            // keep reading the PDVs so the association stays in step.
                            if tx.send(pdv.data).await.is_err() {
                                store.data = None;
                            }
                        }
                        if pdv.last {
                            let store = current.take().ok_or_else(|| DimseError::Command("lost store state".into()))?;
                            finish_store(&mut assoc, store, &calling).await?;
                        }
                    }
                }
            }
            Received::Other(pdu) => match pdu {
                Pdu::ReleaseRQ => {
                    assoc.send(&Pdu::ReleaseRP).await?;
                    tracing::info!(%peer, calling_ae = %calling, "association released");
                    return Ok(());
                }
                Pdu::AbortRQ { source } => {
                    // An instance cut off mid-transfer was never acknowledged; its task fails and
                    // leaves nothing behind.
                    tracing::info!(%peer, ?source, "association aborted by peer");
                    return Ok(());
                }
                other => {
                    tracing::warn!(%peer, pdu = ?std::mem::discriminant(&other), "unexpected PDU; aborting");
                    assoc.abort().await?;
                    return Ok(());
                }
            },
        }
    }
}

/// The Part 10 header a network data set lacks: preamble, magic and file meta.
fn file_meta_prefix(sop_class: &str, sop_instance: &str, ts: &str, calling: &str) -> Result<Vec<u8>, DimseError> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(ts)
        .implementation_class_uid("1.2.826.0.1.3680043.10.1542.1")
        .implementation_version_name("CORELAB")
        .source_application_entity_title(calling)
        .build()
        .map_err(|e| DimseError::Command(format!("cannot build file meta: {e}")))?;
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    meta.write(&mut out).map_err(|e| DimseError::Command(format!("cannot write file meta: {e}")))?;
    Ok(out)
}

async fn begin_store(
    app: &App,
    destination: &Option<Destination>,
    setup: &mut Option<IngestSetup>,
    calling: &str,
    cmd: &InMemDicomObject,
    pc_id: u8,
    ts: &str,
) -> Result<StoreInProgress, DimseError> {
    let message_id = cmd_u16(cmd, tags::MESSAGE_ID)?;
    let sop_class = cmd_str(cmd, tags::AFFECTED_SOP_CLASS_UID)?;
    let sop_instance = cmd_str(cmd, tags::AFFECTED_SOP_INSTANCE_UID)?;
    let (tx, rx) = mpsc::channel::<bytes::Bytes>(16);
    let target = match destination {
        Some(Destination::Trial { trial_id, site_id }) => Some(IngestTarget {
            trial_id: *trial_id,
            site_id: site_id.clone(),
            source: Source::Dimse,
            sender: format!("dicom:{calling}"),
            sender_role: "site_modality".into(),
            sender_id: None,
        }),
        _ => None,
    };
    let task = match target {
        None => {
            // Sent to the server's own AE title: there is no trial to file it under.
            drop(rx);
            tokio::spawn(async {
                Err(IngestError::Refused("send images to the trial's AE title, not the server's".into()))
            })
        }
        Some(target) => {
            if setup.is_none() {
                match app.ingest_setup(&target).await {
                    Ok(s) => *setup = Some(s),
                    Err(e) => {
                        drop(rx);
                        let task = tokio::spawn(async move { Err(e) });
                        return Ok(StoreInProgress { message_id, sop_class, sop_instance, pc_id, data: None, task });
                    }
                }
            }
            let prefix = file_meta_prefix(&sop_class, &sop_instance, ts, calling)?;
            let reader = ChannelReader::new(prefix, rx);
            let (app, setup) = (app.clone(), setup.clone());
            tokio::spawn(async move {
                match setup {
                    Some(s) => app.ingest(&s, target, reader).await,
                    None => Err(IngestError::Internal("no ingest setup".into())),
                }
            })
        }
    };
    Ok(StoreInProgress { message_id, sop_class, sop_instance, pc_id, data: Some(tx), task })
}

async fn finish_store<S>(assoc: &mut S, store: StoreInProgress, calling: &str) -> Result<(), DimseError>
where
    S: AssociationSend,
{
    drop(store.data);
    let result = store.task.await.unwrap_or_else(|e| Err(IngestError::Internal(e.to_string())));
    let (status, comment) = match &result {
        Ok(IngestOutcome::Stored { .. }) | Ok(IngestOutcome::Inbox { .. }) => (command::SUCCESS, None),
        Err(IngestError::Conflict { .. }) => (command::DUPLICATE_SOP_INSTANCE, Some(result_message(&result))),
        Err(IngestError::Unreadable(_)) | Err(IngestError::Refused(_)) | Err(IngestError::WrongStudy { .. }) => {
            (command::CANNOT_UNDERSTAND, Some(result_message(&result)))
        }
        Err(IngestError::Internal(_)) => {
            (command::OUT_OF_RESOURCES, Some("the server could not store it; retry later".into()))
        }
    };
    if let Err(e) = &result {
        tracing::warn!(calling_ae = %calling, status = format!("{status:#06x}"), error = %e, "C-STORE refused");
    }
    let mut elems = vec![
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(store.sop_class.as_str())),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(command::C_STORE_RSP)),
        DataElement::new(tags::MESSAGE_ID_BEING_RESPONDED_TO, VR::US, PrimitiveValue::from(store.message_id)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(command::NO_DATA_SET)),
        DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(status)),
        DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(store.sop_instance.as_str())),
    ];
    if let Some(c) = comment {
        // Error Comment is LO: at most 64 characters.
        let c: String = c.chars().take(64).collect();
        elems.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, PrimitiveValue::from(c)));
    }
    assoc.send_command(store.pc_id, encode_command(elems)?).await
}

fn result_message(r: &Result<IngestOutcome, IngestError>) -> String {
    match r {
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    }
}

/// Sending a command PDV (a trait so `finish_store` does not spell out dicom-ul's types).
trait AssociationSend {
    async fn send_command(&mut self, pc_id: u8, data: Vec<u8>) -> Result<(), DimseError>;
}

impl<S> AssociationSend for dicom_ul::association::AsyncServerAssociation<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    async fn send_command(&mut self, pc_id: u8, data: Vec<u8>) -> Result<(), DimseError> {
        send_command(self, pc_id, data).await
    }
}

async fn send_command<S>(
    assoc: &mut dicom_ul::association::AsyncServerAssociation<S>,
    pc_id: u8,
    data: Vec<u8>,
) -> Result<(), DimseError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data,
            }],
        })
        .await?;
    Ok(())
}

/// Parses a command set (always Implicit VR Little Endian, PS3.7 6.3.1).
pub fn read_command(bytes: &[u8]) -> Result<InMemDicomObject, DimseError> {
    InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| DimseError::Command(e.to_string()))
}

fn cmd_u16(cmd: &InMemDicomObject, tag: Tag) -> Result<u16, DimseError> {
    cmd.element(tag)
        .ok()
        .and_then(|e| e.to_int::<u16>().ok())
        .ok_or_else(|| DimseError::Command(format!("missing or bad {tag}")))
}

fn cmd_str(cmd: &InMemDicomObject, tag: Tag) -> Result<String, DimseError> {
    cmd.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .ok_or_else(|| DimseError::Command(format!("missing {tag}")))
}

/// Encodes a command set with its group length, as PS3.7 requires.
pub fn encode_command(elements: Vec<DataElement<InMemDicomObject>>) -> Result<Vec<u8>, DimseError> {
    let body_obj = InMemDicomObject::from_element_iter(elements);
    let mut body = Vec::new();
    body_obj
        .write_dataset_with_ts(&mut body, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| DimseError::Command(e.to_string()))?;
    let len = u32::try_from(body.len()).map_err(|_| DimseError::Command("command too long".into()))?;
    // (0000,0000) UL, implicit VR: tag, 4-byte length, 4-byte value.
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn echo_response(rq: &InMemDicomObject) -> Result<Vec<u8>, DimseError> {
    let message_id = cmd_u16(rq, tags::MESSAGE_ID)?;
    let sop_class = cmd_str(rq, tags::AFFECTED_SOP_CLASS_UID).unwrap_or_else(|_| uids::VERIFICATION.to_string());
    encode_command(vec![
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(sop_class)),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(command::C_ECHO_RSP)),
        DataElement::new(tags::MESSAGE_ID_BEING_RESPONDED_TO, VR::US, PrimitiveValue::from(message_id)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(command::NO_DATA_SET)),
        DataElement::new(tags::STATUS, VR::US, PrimitiveValue::from(command::SUCCESS)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_response_answers_the_request_it_got() {
        let rq = encode_command(vec![
            DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(uids::VERIFICATION)),
            DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(command::C_ECHO_RQ)),
            DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(7_u16)),
            DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(command::NO_DATA_SET)),
        ])
        .unwrap();
        let rsp = read_command(&echo_response(&read_command(&rq).unwrap()).unwrap()).unwrap();
        assert_eq!(cmd_u16(&rsp, tags::COMMAND_FIELD).unwrap(), command::C_ECHO_RSP);
        assert_eq!(cmd_u16(&rsp, tags::MESSAGE_ID_BEING_RESPONDED_TO).unwrap(), 7);
        assert_eq!(cmd_u16(&rsp, tags::STATUS).unwrap(), 0);
        // The group length counts every byte after itself.
        let bytes = echo_response(&read_command(&rq).unwrap()).unwrap();
        let gl = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        assert_eq!(gl, bytes.len() - 12);
    }

    #[test]
    fn the_synthesized_file_meta_makes_a_part_10_prefix() {
        let p = file_meta_prefix("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", "1.2.840.10008.1.2.1", "SITE").unwrap();
        assert_eq!(&p[..128], &[0u8; 128][..]);
        assert_eq!(&p[128..132], b"DICM");
        let meta = dicom_object::FileMetaTable::from_reader(&p[128..]).unwrap();
        assert_eq!(meta.transfer_syntax().trim_end_matches('\0'), "1.2.840.10008.1.2.1");
        assert_eq!(meta.media_storage_sop_instance_uid().trim_end_matches('\0'), "1.2.3.4");
    }
}
