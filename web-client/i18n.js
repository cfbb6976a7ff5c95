// UI strings: Vietnamese first, English second.
'use strict';
var CAUHOP_STRINGS = {
  vi: {
    title: 'Cầu họp trực tuyến', meeting: 'Mã cuộc họp', name: 'Họ tên', site: 'Điểm cầu',
    camera: 'Camera', mic: 'Micrô', none: 'Không dùng', join: 'Vào họp', leave: 'Rời họp',
    mute: 'Tắt micrô', unmute: 'Bật micrô', camOff: 'Tắt camera', camOn: 'Bật camera',
    share: 'Chia sẻ màn hình', stopShare: 'Dừng chia sẻ', connecting: 'Đang kết nối…',
    reconnecting: 'Mất kết nối, đang kết nối lại…', joined: 'Đã vào họp', left: 'Đã rời cuộc họp',
    ended: 'Cuộc họp đã kết thúc', you: 'Bạn', noMedia: 'Không mở được camera/micrô: ',
    needName: 'Vui lòng nhập họ tên và mã cuộc họp', lang: 'English',
    waiting: 'Cuộc họp chưa mở. Bắt đầu lúc {t}; trang sẽ tự vào họp.',
    not_open: 'Cuộc họp chưa mở (bắt đầu lúc {t}).', meeting_closed: 'Cuộc họp đã kết thúc lúc {t}.',
    link_expired: 'Đường dẫn mời họp đã hết hạn. Xin đường dẫn mới từ người tổ chức.',
    unauthorized: 'Đường dẫn mời họp không hợp lệ hoặc đã bị thu hồi.',
    not_invited: 'Điểm cầu của bạn không có trong danh sách mời.',
    unknown_meeting: 'Không tìm thấy cuộc họp.', forbidden: 'Chỉ chủ trì được làm việc này.',
    rate_limited: 'Thử lại quá nhiều lần, vui lòng đợi.',
    lobby: 'Phòng chờ — cuộc họp bắt đầu lúc {t}', open: 'Đang họp', closing: 'Cuộc họp sắp kết thúc lúc {t}',
    mutedByChair: 'Chủ trì đề nghị bạn tắt micrô.', floor: 'Đang phát biểu: {p}',
    endMeeting: 'Kết thúc họp', extend: 'Gia hạn 15 phút', muteOther: 'Tắt micrô',
    giveFloor: 'Mời phát biểu', chairRole: 'Chủ trì'
  },
  en: {
    title: 'Online meeting bridge', meeting: 'Meeting id', name: 'Your name', site: 'Site',
    camera: 'Camera', mic: 'Microphone', none: 'None', join: 'Join', leave: 'Leave',
    mute: 'Mute', unmute: 'Unmute', camOff: 'Stop camera', camOn: 'Start camera',
    share: 'Share screen', stopShare: 'Stop sharing', connecting: 'Connecting…',
    reconnecting: 'Connection lost, reconnecting…', joined: 'In the meeting', left: 'You left the meeting',
    ended: 'The meeting has ended', you: 'You', noMedia: 'Cannot open camera/microphone: ',
    needName: 'Please enter your name and the meeting id', lang: 'Tiếng Việt',
    waiting: 'The meeting is not open yet. It starts at {t}; this page will join by itself.',
    not_open: 'The meeting is not open yet (starts at {t}).', meeting_closed: 'The meeting ended at {t}.',
    link_expired: 'This invitation link has expired. Ask the organiser for a new one.',
    unauthorized: 'This invitation link is not valid or was revoked.',
    not_invited: 'Your site is not on the invitation list.',
    unknown_meeting: 'Meeting not found.', forbidden: 'Only the chair can do this.',
    rate_limited: 'Too many attempts; please wait.',
    lobby: 'Lobby — the meeting starts at {t}', open: 'In session', closing: 'The meeting ends at {t}',
    mutedByChair: 'The chair asks you to mute your microphone.', floor: 'Speaking: {p}',
    endMeeting: 'End meeting', extend: 'Extend 15 min', muteOther: 'Mute',
    giveFloor: 'Give floor', chairRole: 'Chair'
  }
};
